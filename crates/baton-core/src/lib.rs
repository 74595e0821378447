//! Domain types shared by every Baton crate. Nothing here performs I/O.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod chat;
pub mod cursor;
pub mod frame;
pub mod ids;
pub mod lease;
pub mod message;
pub mod page;
pub mod run;
pub mod session;
pub mod task;
pub mod time;
pub mod topic;
pub mod trace;

pub use attachment::{Attachment, NewAttachment};
pub use chat::{Capabilities, Chat, ChatPatch, NewChat};
pub use cursor::{CursorError, TraceCursor};
pub use frame::{
    Frame, FrameBody, FrameText, NewFrame, NotificationKind, RunEvent, SnapshotState,
    StreamRestart, TaskPhase, TracePhase, WireFrame,
};
pub use ids::{AttachmentId, ChatId, IdError, MessageId, RunId, SessionId, TaskId, TraceId};
pub use lease::{Instance, Lease, RunControl};
pub use message::{Message, NewMessage, Role};
pub use page::Page;
pub use run::{
    AgentStatus, AgentView, JournalEntry, PhaseView, Run, RunOptions, RunStatus, RunTotals, RunView,
};
pub use session::{Session, SessionStatus, SessionUsage, SessionView, TurnSummary};
pub use task::{Task, TaskProgress, TaskStatus};
pub use time::Timestamp;
pub use topic::{Topic, TopicError};
pub use trace::{Trace, TraceFinish, TraceKind, TraceOutcome};
