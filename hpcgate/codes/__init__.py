"""One home per numerical code (SIESTA/TranSIESTA, Quantum ESPRESSO, generic programs).

``plugin.py`` is the protocol a code implements, ``registry.py`` lists the codes, and
``<code>/`` holds each code's preparation, stdout markers and validator. Only light
modules are imported here: validation runs inside batch jobs and must not pull in sisl
or numpy.
"""
