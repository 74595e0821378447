import { render } from "preact";
import { live } from "./app";
import { onLink, route } from "./router";
import { ChatView } from "./views/ChatView";
import { RunPage } from "./views/RunView";
import { RunsPage } from "./views/RunsView";
import { BackgroundPage } from "./views/BackgroundView";
import { Home, Shell } from "./views/Shell";
import { WorkflowsPage } from "./views/WorkflowsView";
import "./styles.css";

function Page() {
  const r = route.value;
  switch (r.page) {
    case "home":
      return <Home />;
    case "chat":
      return <ChatView id={r.id} key={r.id} />;
    case "workflows":
      return <WorkflowsPage name={r.name} />;
    case "runs":
      return <RunsPage />;
    case "run":
      return <RunPage id={r.id} key={r.id} />;
    case "tasks":
      return <BackgroundPage />;
    case "missing":
      return (
        <div class="empty">
          <h2>Nothing here</h2>
          <p>
            <a href="/">Back to the chats</a>
          </p>
        </div>
      );
  }
}

document.addEventListener("click", onLink);
live.start();
render(
  <Shell>
    <Page />
  </Shell>,
  document.getElementById("app")!,
);
