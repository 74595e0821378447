//! An agent session's lifecycle as pure functions: whether a new message or a cancel
//! applies to a session in a given status (and who acts on the cancel), and the status a
//! loop's end leaves. `runtime` and `runner` apply the answers.
use baton_core::SessionStatus;

/// Who runs the session's loop now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Here,
    /// Another live instance.
    Elsewhere,
    /// Nobody: its instance died, or it is not running.
    Nobody,
}

/// What a cancel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Stop the loop running here.
    Local,
    /// Ask the instance that runs it.
    Ask,
    /// Nothing runs it: claim it and write it `cancelled`.
    Close,
}

/// Why a command does not apply (409).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict(pub String);

/// Whether a new user message may start a turn of a session in `status`.
pub fn on_message(status: SessionStatus, running_here: bool) -> Result<(), Conflict> {
    if status == SessionStatus::Running || running_here {
        return Err(Conflict(
            "the agent is still answering the previous message; wait for it or cancel it".into(),
        ));
    }
    Ok(())
}

/// What cancelling a session in `status` does; `chat` is false for a workflow's agent,
/// which stops with its run.
pub fn on_cancel(status: SessionStatus, holder: Holder, chat: bool) -> Result<Cancel, Conflict> {
    match (status, holder) {
        (_, Holder::Here) => Ok(Cancel::Local),
        (SessionStatus::Running, _) if !chat => Err(Conflict(
            "a workflow's agent stops with its run; cancel the run".into(),
        )),
        (SessionStatus::Running, Holder::Elsewhere) => Ok(Cancel::Ask),
        (SessionStatus::Running, Holder::Nobody) => Ok(Cancel::Close),
        (other, _) => Err(Conflict(format!(
            "the session is {}, not running",
            other.as_str()
        ))),
    }
}

/// How a session's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Answered,
    Cancelled,
    TimedOut,
    Failed,
    /// The server is stopping: the session stays `running` for whoever runs it next.
    Shutdown,
    /// Another instance holds it now: this one writes nothing.
    Lost,
}

/// The status a loop's end leaves, or `None` when it must not be written.
pub fn after(ending: Ending, chat: bool) -> Option<SessionStatus> {
    Some(match ending {
        // A chat waits for its next question; a workflow's agent is done.
        Ending::Answered if chat => SessionStatus::Idle,
        Ending::Answered => SessionStatus::Completed,
        Ending::Cancelled => SessionStatus::Cancelled,
        Ending::TimedOut | Ending::Failed => SessionStatus::Failed,
        Ending::Shutdown | Ending::Lost => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionStatus as S;

    const ALL: [SessionStatus; 6] = [
        S::Idle,
        S::Running,
        S::AwaitingInput,
        S::Completed,
        S::Failed,
        S::Cancelled,
    ];

    #[test]
    fn a_message_waits_for_the_answer_in_progress() {
        for s in ALL {
            assert_eq!(on_message(s, false).is_err(), s == S::Running, "{s:?}");
            assert!(on_message(s, true).is_err(), "a loop running here: {s:?}");
        }
    }

    #[test]
    fn cancel_goes_where_the_loop_runs_and_refuses_what_is_not_running() {
        assert_eq!(on_cancel(S::Running, Holder::Here, true), Ok(Cancel::Local));
        assert_eq!(
            on_cancel(S::Running, Holder::Elsewhere, true),
            Ok(Cancel::Ask)
        );
        assert_eq!(
            on_cancel(S::Running, Holder::Nobody, true),
            Ok(Cancel::Close)
        );
        assert!(on_cancel(S::Running, Holder::Elsewhere, false).is_err());
        assert_eq!(
            on_cancel(S::Running, Holder::Here, false),
            Ok(Cancel::Local)
        );
        for s in ALL.into_iter().filter(|s| *s != S::Running) {
            for h in [Holder::Elsewhere, Holder::Nobody] {
                let e = on_cancel(s, h, true).unwrap_err();
                assert!(e.0.contains(s.as_str()), "{e:?}");
            }
        }
    }

    #[test]
    fn an_ending_leaves_its_status_and_a_lost_or_stopping_loop_writes_none() {
        assert_eq!(after(Ending::Answered, true), Some(S::Idle));
        assert_eq!(after(Ending::Answered, false), Some(S::Completed));
        assert_eq!(after(Ending::Cancelled, true), Some(S::Cancelled));
        assert_eq!(after(Ending::TimedOut, false), Some(S::Failed));
        assert_eq!(after(Ending::Failed, true), Some(S::Failed));
        assert_eq!(after(Ending::Shutdown, true), None);
        assert_eq!(after(Ending::Lost, true), None);
    }
}
