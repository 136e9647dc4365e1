"""Pure domain logic: no I/O, no ORM. Safe to import anywhere, including the agent."""
