//! Why a storage operation failed.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported database.
    #[error("unsupported database url (use sqlite: or postgres://)")]
    UnsupportedUrl,
    /// Creating the SQLite file's directory failed.
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A room with this name exists already.
    #[error("room {0:?} already exists")]
    RoomExists(String),
    /// No room has this name.
    #[error("room {0:?} not found")]
    RoomNotFound(String),
    /// The room was closed.
    #[error("room {0:?} is closed")]
    RoomClosed(String),
    /// The store was closed (the server is stopping).
    #[error("storage is closed")]
    Closed,
    /// The input breaks a rule (e.g. a bad room name).
    #[error("{0}")]
    Invalid(String),
    /// A case with this number exists already.
    #[error("case {0:?} already exists")]
    CaseExists(String),
    /// No case has this id.
    #[error("case {0:?} not found")]
    CaseNotFound(String),
    /// The workflow's rules refuse the command.
    #[error(transparent)]
    Rule(#[from] tiaojie_domain::mediation::RuleError),
    /// Other commands kept changing the case first (retried, then given up).
    #[error("the case changed concurrently; try again")]
    Conflict,
    /// A message id already in the inbox (a redelivery taken by another connection).
    #[error("message already taken")]
    Duplicate,
}
