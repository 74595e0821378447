use baton_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadInput(String),
    /// A message names an attachment that is not stored, or too many.
    #[error("{0}")]
    Attachment(String),
    /// Images for a model that cannot see them, with no `vision_model` to describe them.
    #[error("{0}")]
    TextOnlyModel(String),
    /// An upload over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// An upload that is not an image Baton accepts.
    #[error(transparent)]
    Media(#[from] baton_media::MediaError),
    #[error(transparent)]
    Workspace(#[from] crate::workspace::WorkspaceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
