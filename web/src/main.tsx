import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { createServices, ServicesProvider } from "./api/context";
import "./styles.css";

const services = createServices();
createRoot(document.getElementById("root") as HTMLElement).render(
  <StrictMode>
    <ServicesProvider services={services}>
      <App />
    </ServicesProvider>
  </StrictMode>,
);
void services.auth.restore();
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") void services.auth.ensureFresh();
});
