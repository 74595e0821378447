//! `baton-mock-model [ADDR]`: the scripted model server for demos. Every question is
//! answered like a small agent would: first a `list_dir` of the workspace, then, once
//! the tool result is back, a short answer (or, when the agent was asked for structured
//! output, a value made up from the schema, so the built-in workflows run end to end).
//! A message containing `[fast]` is answered at once, without a tool (for load tests);
//! one containing `[slow]` streams a long answer over about twenty seconds (something to
//! watch, or to cancel); one containing `[background]` has the agent start a background
//! agent, and the notice of its end is acknowledged; one containing `[markdown]` gets an
//! answer in Markdown with code, a table and some hostile HTML (for the web app's
//! sanitising).
use baton_mock_model::{MockModel, Reply};
use serde_json::json;

const USAGE: &str =
    "usage: baton-mock-model [ADDR]   (default 127.0.0.1:8099; port 0 picks a free one)";

fn fail(message: String) -> ! {
    eprintln!("baton-mock-model: {message}\n{USAGE}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8099".into());
    if addr == "-h" || addr == "--help" {
        println!("{USAGE}");
        return;
    }
    if let Some(extra) = args.next() {
        fail(format!("unexpected argument '{extra}'"));
    }
    let addr = addr
        .parse()
        .unwrap_or_else(|_| fail(format!("'{addr}' is not an address like 127.0.0.1:8099")));
    let mock = MockModel::try_start_on(addr)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {addr}: {e}")));
    mock.after_tool_result(
        Reply::text("I listed the workspace root; the entries are in the list_dir call above.")
            .slow(std::time::Duration::from_millis(150)),
    );
    mock.set_default(Reply::tool("list_dir", json!({ "path": "." })));
    mock.schema_answers();
    mock.rule(
        "<task-notification",
        Reply::text("The background agent has finished; its result is in the notice above."),
    );
    mock.rule("[fast]", Reply::text("Done at once."));
    // A vision model asked to describe an attached image, and a question about one.
    mock.rule(
        "Describe this image",
        Reply::text("A small square that fades from dark to light, with no text in it."),
    );
    mock.rule(
        "[image]",
        Reply::text(
            "The image is a small square fading from dark to light; there is no text in it.",
        ),
    );
    mock.rule(
        "[markdown]",
        Reply::text(
            "## Findings\n\nThe store has **two** backends:\n\n- SQLite\n- Postgres\n\n\
             | backend | file |\n|---|---|\n| sqlite | `store-sqlite` |\n\n\
             ```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\n\
             <img src=x onerror=\"window.__pwned = 1\"> [a link](javascript:window.__pwned=2) \
             <script>window.__pwned = 3</script>Done.",
        ),
    );
    mock.rule(
        "[background]",
        Reply::tool(
            "spawn_subagent",
            json!({ "prompt": "[fast] look into it", "label": "background helper" }),
        ),
    );
    mock.rule(
        "\"queued\"",
        Reply::text("I started a background agent; you will be told when it is done."),
    );
    mock.rule(
        "[slow]",
        Reply::text("Still working on it, step by step. ".repeat(8))
            .slow(std::time::Duration::from_millis(400)),
    );
    println!("mock model on http://{}", mock.addr);
    println!("  openai-compatible: {}", mock.base_url("openai"));
    println!("  deepseek-style:    {}", mock.base_url("deepseek"));
    println!("  anthropic:         {}", mock.base_url("anthropic"));
    std::future::pending::<()>().await;
}
