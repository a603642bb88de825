import { createHashRouter, Navigate, NavLink, Outlet, useRouteError } from "react-router";
import { useHealth } from "./api/queries";
import { ErrorMessage } from "./components/ErrorMessage";
import { AttackLabPage } from "./pages/AttackLabPage";
import { DatasetsPage } from "./pages/DatasetsPage";
import { DetectorPage } from "./pages/DetectorPage";
import { JobsPage } from "./pages/JobsPage";
import { LiveTestPage } from "./pages/LiveTestPage";
import { ModelsPage } from "./pages/ModelsPage";
import { RobustnessPage } from "./pages/RobustnessPage";

const PAGES = [
  { path: "datasets", title: "Datasets", element: <DatasetsPage /> },
  { path: "models", title: "Models", element: <ModelsPage /> },
  { path: "attack", title: "Attack lab", element: <AttackLabPage /> },
  { path: "robustness", title: "Robustness", element: <RobustnessPage /> },
  { path: "detector", title: "Detector", element: <DetectorPage /> },
  { path: "live", title: "Live test", element: <LiveTestPage /> },
  { path: "jobs", title: "Jobs", element: <JobsPage /> },
];

function HealthBadge() {
  const health = useHealth();
  if (health.error)
    return (
      <span className="health health-bad" role="status">
        API unreachable
      </span>
    );
  if (!health.data) return null;
  const ok = health.data.status === "ok";
  return (
    <span
      className={`health ${ok ? "health-ok" : "health-bad"}`}
      role="status"
      title={`advguard ${health.data.version}`}
    >
      {ok ? "service ok" : `degraded: broker ${health.data.broker}, database ${health.data.database}`}
    </span>
  );
}

function Layout() {
  return (
    <>
      <a
        className="skip"
        href="#main"
        onClick={(event) => {
          event.preventDefault();
          document.getElementById("main")?.focus();
        }}
      >
        Skip to content
      </a>
      <header className="top">
        <span className="brand">advguard</span>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((page) => (
              <li key={page.path}>
                <NavLink to={`/${page.path}`}>{page.title}</NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <HealthBadge />
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}

function RouteError() {
  const error = useRouteError();
  return (
    <main id="main">
      <h1>Something went wrong</h1>
      <ErrorMessage error={error} />
      <p>
        <a href="#/datasets">Back to the datasets</a>
      </p>
    </main>
  );
}

export const router = createHashRouter([
  {
    path: "/",
    element: <Layout />,
    errorElement: <RouteError />,
    children: [
      { index: true, element: <Navigate to="/datasets" replace /> },
      ...PAGES.map(({ path, element }) => ({ path, element })),
      { path: "*", element: <Navigate to="/datasets" replace /> },
    ],
  },
]);
