#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScriptError {
    /// The script does not parse; 1-based position in the file as given.
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: u32,
        column: u32,
        message: String,
    },
    #[error("invalid meta: {0}")]
    Meta(String),
    #[error("{message} (line {line}, column {column})")]
    Forbidden {
        line: u32,
        column: u32,
        message: String,
    },
    /// The script threw, or rejected, with this message (and stack when there is one).
    #[error("the script failed: {0}")]
    Thrown(String),
    #[error("the script ran past its {0:?} deadline")]
    Deadline(std::time::Duration),
    #[error("cancelled")]
    Cancelled,
    #[error("the script used more than its {0} MiB of memory")]
    OutOfMemory(usize),
    #[error("the script's result is not JSON: {0}")]
    Result(String),
    #[error("sandbox failure: {0}")]
    Engine(String),
}
