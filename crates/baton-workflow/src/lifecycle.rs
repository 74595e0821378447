//! A run's lifecycle as pure functions: what a control command does to a run in a given
//! status, depending on who executes it, and how a status change rewrites the run's
//! fields. No I/O here; `engine` applies the answers (writes conditional on the lease
//! epoch, then publishes), so every status change goes through this module.
use baton_core::{time, Run, RunControl, RunStatus, Timestamp};

/// A control command from the API or the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Approve,
    Cancel,
    Pause,
    /// `edited`: re-run with an edited script.
    Resume {
        edited: bool,
    },
}

/// Who executes the run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// This instance: its script is live here.
    Here,
    /// Another live instance.
    Elsewhere,
    /// Nobody: held for approval, queued, paused, finished, or its instance died.
    Nobody,
}

/// What to do about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Act on the live run here.
    Local(RunControl),
    /// Leave the request for the instance that executes the run and wait for it.
    Ask(RunControl),
    /// Nobody executes it: claim it (fencing any late holder) and write this status.
    Set(RunStatus),
}

/// Why a command does not apply; the API answers 409 with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict(pub String);

fn conflict(msg: impl Into<String>) -> Result<Step, Conflict> {
    Err(Conflict(msg.into()))
}

/// The step `command` takes on a run in `status` held by `holder`.
pub fn decide(status: RunStatus, holder: Holder, command: Command) -> Result<Step, Conflict> {
    use RunStatus as S;
    let s = status.as_str();
    match command {
        Command::Approve => match status {
            S::AwaitingApproval => Ok(Step::Set(S::Queued)),
            _ => conflict(format!("the run is {s}, not awaiting approval")),
        },
        Command::Cancel => {
            if status.is_finished() {
                return conflict(format!("the run is already {s}"));
            }
            Ok(by_holder(holder, RunControl::Cancel, S::Cancelled))
        }
        Command::Pause => match status {
            S::Running | S::Queued => Ok(by_holder(holder, RunControl::Pause, S::Paused)),
            _ => conflict(format!(
                "the run is {s}; only a running or queued run can be paused"
            )),
        },
        Command::Resume { edited } => match (status, holder) {
            (S::AwaitingApproval, _) => conflict(format!("the run is {s}; nothing to resume")),
            (S::Completed, _) if !edited => conflict(format!(
                "the run is {s}; nothing to resume (send an edited script to re-run it)"
            )),
            (_, Holder::Here | Holder::Elsewhere) if edited => conflict(
                "the run is still active; cancel or wait before re-running an edited script",
            ),
            (S::Paused, Holder::Here) => Ok(Step::Local(RunControl::Resume)),
            (S::Paused, Holder::Elsewhere) => Ok(Step::Ask(RunControl::Resume)),
            (S::Running | S::Queued, Holder::Here | Holder::Elsewhere) => {
                conflict(format!("the run is {s}; nothing to resume"))
            }
            (S::Queued, Holder::Nobody) if !edited => {
                conflict("the run is queued; it starts when an instance has room")
            }
            // Paused, stopped or finished and executed nowhere: queued again, to run from
            // the top with its journal wherever there is room.
            (_, Holder::Nobody) => Ok(Step::Set(S::Queued)),
            (_, _) => conflict(format!("the run is {s}; nothing to resume")),
        },
    }
}

fn by_holder(holder: Holder, control: RunControl, status: RunStatus) -> Step {
    match holder {
        Holder::Here => Step::Local(control),
        Holder::Elsewhere => Step::Ask(control),
        Holder::Nobody => Step::Set(status),
    }
}

/// `run` moved to `status` at `now`, with the fields that go with it.
pub fn enter(run: &mut Run, status: RunStatus, now: Timestamp) {
    run.status = status;
    run.updated_at = now;
    match status {
        RunStatus::Queued => {
            run.result = None;
            run.error = None;
            run.finished_at = None;
        }
        RunStatus::Running => {
            run.started_at = run.started_at.or(Some(now));
        }
        RunStatus::Cancelled => {
            run.error = Some("cancelled".into());
            run.finished_at = Some(now);
        }
        RunStatus::Completed | RunStatus::Failed => {
            run.finished_at = Some(now);
        }
        RunStatus::AwaitingApproval | RunStatus::Paused => {}
    }
}

/// [`enter`] at the current time.
pub fn enter_now(run: &mut Run, status: RunStatus) {
    enter(run, status, time::now());
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunStatus as S;

    const ALL: [RunStatus; 7] = [
        S::AwaitingApproval,
        S::Queued,
        S::Running,
        S::Paused,
        S::Completed,
        S::Failed,
        S::Cancelled,
    ];
    const HOLDERS: [Holder; 3] = [Holder::Here, Holder::Elsewhere, Holder::Nobody];

    #[test]
    fn only_a_run_awaiting_approval_can_be_approved() {
        for s in ALL {
            for h in HOLDERS {
                let got = decide(s, h, Command::Approve);
                if s == S::AwaitingApproval {
                    assert_eq!(got, Ok(Step::Set(S::Queued)));
                } else {
                    assert!(got.is_err(), "{s:?} {h:?}");
                }
            }
        }
    }

    #[test]
    fn cancel_goes_to_whoever_executes_the_run_and_a_finished_run_refuses() {
        for s in ALL {
            let here = decide(s, Holder::Here, Command::Cancel);
            let there = decide(s, Holder::Elsewhere, Command::Cancel);
            let nobody = decide(s, Holder::Nobody, Command::Cancel);
            if s.is_finished() {
                assert!(here.is_err() && there.is_err() && nobody.is_err());
                assert!(nobody.unwrap_err().0.contains(s.as_str()));
            } else {
                assert_eq!(here, Ok(Step::Local(RunControl::Cancel)));
                assert_eq!(there, Ok(Step::Ask(RunControl::Cancel)));
                // A dead instance's run ends without waiting for a takeover.
                assert_eq!(nobody, Ok(Step::Set(S::Cancelled)));
            }
        }
    }

    #[test]
    fn pause_applies_to_running_and_queued_runs_only() {
        assert_eq!(
            decide(S::Queued, Holder::Nobody, Command::Pause),
            Ok(Step::Set(S::Paused))
        );
        assert_eq!(
            decide(S::Running, Holder::Elsewhere, Command::Pause),
            Ok(Step::Ask(RunControl::Pause))
        );
        for s in [
            S::Paused,
            S::AwaitingApproval,
            S::Completed,
            S::Failed,
            S::Cancelled,
        ] {
            assert!(decide(s, Holder::Here, Command::Pause).is_err(), "{s:?}");
        }
    }

    #[test]
    fn resume_of_a_run_nobody_executes_queues_it_instead_of_claiming_it_runs() {
        // A paused queued run resumed is queued again, never "running" with no agents.
        assert_eq!(
            decide(S::Paused, Holder::Nobody, Command::Resume { edited: false }),
            Ok(Step::Set(S::Queued))
        );
        assert_eq!(
            decide(S::Paused, Holder::Here, Command::Resume { edited: false }),
            Ok(Step::Local(RunControl::Resume))
        );
        assert_eq!(
            decide(
                S::Paused,
                Holder::Elsewhere,
                Command::Resume { edited: false }
            ),
            Ok(Step::Ask(RunControl::Resume))
        );
        for s in [S::Failed, S::Cancelled] {
            assert_eq!(
                decide(s, Holder::Nobody, Command::Resume { edited: false }),
                Ok(Step::Set(S::Queued))
            );
        }
        assert!(decide(
            S::Completed,
            Holder::Nobody,
            Command::Resume { edited: false }
        )
        .is_err());
        assert_eq!(
            decide(
                S::Completed,
                Holder::Nobody,
                Command::Resume { edited: true }
            ),
            Ok(Step::Set(S::Queued))
        );
        assert!(decide(S::Running, Holder::Here, Command::Resume { edited: true }).is_err());
        assert!(decide(
            S::Running,
            Holder::Elsewhere,
            Command::Resume { edited: false }
        )
        .is_err());
        assert!(decide(S::Queued, Holder::Nobody, Command::Resume { edited: false }).is_err());
        assert!(decide(
            S::AwaitingApproval,
            Holder::Nobody,
            Command::Resume { edited: true }
        )
        .is_err());
    }

    fn run() -> Run {
        let t = time::now();
        Run {
            id: baton_core::RunId::new(),
            name: "r".into(),
            status: S::Failed,
            source: "inline".into(),
            script: "return 1".into(),
            args: None,
            options: Default::default(),
            result: Some(serde_json::json!(1)),
            error: Some("boom".into()),
            totals: Default::default(),
            log: vec![],
            created_at: t,
            started_at: None,
            finished_at: Some(t),
            updated_at: t,
            lease: Default::default(),
        }
    }

    #[test]
    fn entering_a_status_sets_the_fields_that_go_with_it() {
        let now = time::now();
        let mut r = run();
        enter(&mut r, S::Queued, now);
        assert_eq!(
            (r.result.clone(), r.error.clone(), r.finished_at),
            (None, None, None)
        );
        assert_eq!(r.started_at, None, "queued is not started");
        enter(&mut r, S::Running, now);
        assert_eq!(r.started_at, Some(now));
        let later = time::from_micros(time::to_micros(&now) + 5_000_000).unwrap();
        enter(&mut r, S::Running, later);
        assert_eq!(
            r.started_at,
            Some(now),
            "a resumed run keeps its first start"
        );
        enter(&mut r, S::Cancelled, later);
        assert_eq!(r.status, S::Cancelled);
        assert_eq!(r.error.as_deref(), Some("cancelled"));
        assert_eq!(r.finished_at, Some(later));
    }
}
