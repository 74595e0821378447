//! A session's stored state and the system prompt it names.
use baton_agent::state::SessionState;
use baton_agent::AgentError;
use baton_store::Queued;
use baton_testkit::{Kind, TestDb};

#[tokio::test]
async fn a_state_naming_its_prompt_reads_back_whole() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = db.store();
    let state = SessionState {
        system: "Be brief.".into(),
        system_ref: Some("p1".into()),
        workspace: "/w".into(),
        ..Default::default()
    };
    let stored = state.to_value();
    assert!(stored.get("system").is_none(), "{stored}");

    // Named but not stored: a clear refusal, not an empty prompt.
    let err = SessionState::load(&*store, &stored).await.unwrap_err();
    assert!(
        matches!(&err, AgentError::BadInput(m) if m.contains("p1")),
        "{err}"
    );

    store
        .queue(Queued::Prompt {
            hash: "p1".into(),
            text: "Be brief.".into(),
        })
        .await;
    let read = SessionState::load(&*store, &stored).await.unwrap();
    assert_eq!(
        (read.system.as_str(), read.workspace.as_str()),
        ("Be brief.", "/w")
    );

    // A state that carries its prompt (a chat's) is read as it is.
    let own = SessionState {
        system: "Mine.".into(),
        ..Default::default()
    };
    let read = SessionState::load(&*store, &own.to_value()).await.unwrap();
    assert_eq!(read.system, "Mine.");
}
