import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { loadCapabilities } from "./api/capabilities";
import { createServices, ServicesContext } from "./api/context";
import "./styles.css";

async function start() {
  const services = createServices(await loadCapabilities());
  const root = createRoot(document.getElementById("root") as HTMLElement);
  root.render(
    <StrictMode>
      <ServicesContext.Provider value={services}>
        <App />
      </ServicesContext.Provider>
    </StrictMode>,
  );
  void services.auth.restore();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") void services.auth.ensureFresh();
  });
}

void start();
