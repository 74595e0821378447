import { render } from "preact";

render(<p>Baton</p>, document.getElementById("app")!);
