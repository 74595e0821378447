//! Telling a chat that its background tasks ended (SPEC 6). Each ended task becomes a
//! `notice` message in its chat and a user turn in the chat agent's history, once, in the
//! order the tasks ended: at the agent's next turn boundary while it works, or at once
//! while it is idle — then, if the chat's `auto_continue` is on, the agent is woken to go
//! on with it. Storing the notice marks its task told in the same transaction
//! (`Store::save_session`), so a crash leaves it either told with the history that holds
//! it, or untold.
use baton_core::{
    time, ChatId, FrameBody, Message, MessageId, Role, Session, SessionStatus, Task, Topic,
};
use baton_llm::ChatMessage;

use crate::error::AgentError;
use crate::runtime::AgentRuntime;
use crate::shared::{publish, publish_state, Inner};
use crate::state::SessionState;

/// Chats whose untold tasks one sweep looks at, at most.
const CHATS_PER_SWEEP: u32 = 32;
/// Longest result a notice carries; `subagent_result` gives the whole of a longer one.
const MAX_NOTICE_CHARS: usize = 50_000;

/// The notice for an ended task: what the chat shows, and what the agent reads.
fn notice(task: &Task, chat: ChatId, turn_number: i64) -> (Message, ChatMessage) {
    let name = task.label.as_deref().unwrap_or("background task");
    let (head, body) = match task.status {
        baton_core::TaskStatus::Completed => ("completed", task.result.as_deref()),
        baton_core::TaskStatus::Cancelled => ("was cancelled", task.error.as_deref()),
        _ => ("failed", task.error.as_deref()),
    };
    let mut shown = format!("Background task “{name}” {head}.");
    if let Some(body) = body.filter(|b| !b.trim().is_empty()) {
        shown.push_str("\n\n");
        if body.chars().count() > MAX_NOTICE_CHARS {
            shown.extend(body.chars().take(MAX_NOTICE_CHARS));
            shown.push_str("\n\n[… cut here; subagent_result gives the whole answer]");
        } else {
            shown.push_str(body);
        }
    }
    let told = format!(
        "<task-notification task_id=\"{}\" status=\"{}\">\n{shown}\n</task-notification>",
        task.id,
        task.status.as_str()
    );
    let message = Message {
        id: MessageId::new(),
        chat_id: chat,
        role: Role::Notice,
        content: shown,
        attachments: vec![],
        turn_number,
        created_at: time::now(),
        task_id: Some(task.id),
    };
    (message, ChatMessage::user_text(told))
}

/// Adds the chat's untold ended tasks to `state`'s history and returns their notices, to
/// be saved with the next snapshot. Only the holder of the chat's session calls this.
pub(crate) async fn take(
    inner: &Inner,
    session: &Session,
    state: &mut SessionState,
) -> Result<Vec<Message>, AgentError> {
    let Some(chat) = session.chat_id else {
        return Ok(Vec::new());
    };
    let untold = inner.store.untold_tasks(chat).await?;
    Ok(untold
        .iter()
        .map(|task| {
            let (message, told) = notice(task, chat, session.turn_number + 1);
            state.history.push(told);
            message
        })
        .collect())
}

/// Sends the `message` frames of messages just saved to their chats.
pub(crate) async fn publish_messages(inner: &Inner, messages: &[Message]) {
    for m in messages {
        publish(
            &inner.hub,
            Topic::Chat(m.chat_id),
            FrameBody::Message { message: m.clone() },
        )
        .await;
    }
}

impl AgentRuntime {
    /// Tells chat `chat` of its ended tasks if its agent is not working (a working agent
    /// reads them at its next turn boundary), waking the agent when the chat's
    /// `auto_continue` is on and its last answer ended well.
    pub async fn tell_chat(&self, chat: ChatId) -> Result<(), AgentError> {
        let inner = &self.inner;
        let cfg = &inner.config;
        if inner.store.untold_tasks(chat).await?.is_empty() {
            return Ok(());
        }
        let Some(chat) = inner.store.get_chat(chat).await? else {
            return Ok(());
        };
        let Some(latest) = inner.store.list_sessions(chat.id).await?.pop() else {
            return Ok(());
        };
        if latest.status == SessionStatus::Running || self.is_running(latest.id) {
            return Ok(());
        }
        let Some(mut session) = inner
            .store
            .claim_session(latest.id, &cfg.instance, cfg.lease_ttl)
            .await?
        else {
            return Ok(());
        };
        if session.status == SessionStatus::Running {
            // Its instance died in between: take it over; it tells at its next boundary.
            return self.adopt(session).await;
        }
        let mut state = SessionState::load(&*inner.store, &session.state).await?;
        // Read again under the claim: whoever held it before may have told some since.
        let messages = take(inner, &session, &mut state).await?;
        if messages.is_empty() {
            return Ok(());
        }
        let wake = chat.auto_continue && session.status == SessionStatus::Idle;
        if wake {
            state.begin_answer();
            session.status = SessionStatus::Running;
            session.error = None;
        }
        session.state = state.to_value();
        session.updated_at = time::now();
        match inner.store.save_session(&session, &messages).await {
            Ok(()) => {}
            // Claimed in between (a person's message): its loop tells them.
            Err(baton_store::StoreError::Fenced(_) | baton_store::StoreError::NotFound(_)) => {
                return Ok(())
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(chat = %chat.id, notices = messages.len(), wake, "told a chat of its ended tasks");
        publish_messages(inner, &messages).await;
        publish_state(&inner.hub, Topic::Chat(chat.id), &session).await;
        if wake {
            self.spawn(session, state);
        }
        Ok(())
    }

    /// Tells the chats whose ended tasks nobody has told yet (an instance died between a
    /// task's end and telling it, or the agent was busy then and stopped since).
    pub async fn tell_untold_chats(&self) {
        let chats = match self
            .inner
            .store
            .chats_with_untold_tasks(CHATS_PER_SWEEP)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "looking for untold tasks failed");
                return;
            }
        };
        for chat in chats {
            if let Err(e) = self.tell_chat(chat).await {
                tracing::warn!(chat = %chat, error = %e, "telling a chat of its tasks failed");
            }
        }
    }
}
