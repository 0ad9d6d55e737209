//! What can go wrong in a client command, and the exit code of each kind.
//!
//! Scripts branch on the exit code, so the kinds are coarse and stable:
//! the user's input (2), the server's refusal (3), the way to the server
//! (4), anything else (1).

use serde_json::Value;

/// Exit code of a usage error: bad flags, unreadable `@file`, invalid JSON.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of an API error: the server answered non-2xx.
pub const EXIT_API: u8 = 3;
/// Exit code of a transport error: no connection, timeout, TLS, garbage.
pub const EXIT_TRANSPORT: u8 = 4;
/// Exit code of anything else.
pub const EXIT_OTHER: u8 = 1;

/// A failed client command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or a local input is wrong; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// The server answered with an error.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The stable error code (`INVALID_PARAMS`, …).
        code: String,
        /// The server's message.
        message: String,
        /// The whole answer body, as the server sent it.
        body: Value,
    },
    /// The server could not be reached or answered something that is not
    /// the API's JSON.
    #[error("{0}")]
    Transport(String),
    /// Anything else (a local I/O failure, say).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// A usage error from anything printable.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    /// A transport error from anything printable.
    pub fn transport(message: impl Into<String>) -> Self {
        Self::Transport(message.into())
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Api { .. } => EXIT_API,
            Self::Transport(_) => EXIT_TRANSPORT,
            Self::Other(_) => EXIT_OTHER,
        }
    }
}

/// Result of a client command.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_exit_code() {
        assert_eq!(CliError::usage("x").exit_code(), 2);
        let api = CliError::Api {
            status: 400,
            code: "INVALID_PARAMS".into(),
            message: "m".into(),
            body: Value::Null,
        };
        assert_eq!(api.exit_code(), 3);
        assert_eq!(api.to_string(), "INVALID_PARAMS: m");
        assert_eq!(CliError::transport("x").exit_code(), 4);
        assert_eq!(CliError::from(anyhow::anyhow!("x")).exit_code(), 1);
    }
}
