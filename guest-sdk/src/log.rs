//! Structured logging through the host's `log` import.
//!
//! Lines land in the host's log tagged with connector, instance and
//! invocation. Use the functions here, or the macros
//! [`info!`](crate::info) and friends, which add `format!` and fields:
//!
//! ```no_run
//! let id = 42;
//! plugboard_guest::info!("created ticket {id}"; ticket_id = id, queue = "support");
//! plugboard_guest::log::warn("falling back to page-based pagination");
//! ```
//!
//! Never log credentials or personal data: log lines are not secret.

use core::fmt::Display;

use crate::bindings::plugboard::connector::host;

/// Log severity.
pub use host::LogLevel as Level;

/// Writes one log line with `key = value` fields.
pub fn log(level: Level, message: &str, fields: &[(&str, &dyn Display)]) {
    let fields: Vec<host::LogField> = fields
        .iter()
        .map(|(key, value)| host::LogField {
            key: (*key).to_owned(),
            value: value.to_string(),
        })
        .collect();
    host::log(level, message, &fields);
}

/// Logs at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref(), &[]);
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref(), &[]);
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref(), &[]);
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref(), &[]);
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref(), &[]);
}

/// Shared body of the level macros; not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:expr, $fmt:literal $(, $arg:expr)* $(,)? ; $($key:ident = $value:expr),+ $(,)?) => {
        $crate::log::log(
            $level,
            &::std::format!($fmt $(, $arg)*),
            &[$((::core::stringify!($key), &$value as &dyn ::core::fmt::Display)),+],
        )
    };
    ($level:expr, $fmt:literal $(, $arg:expr)* $(,)?) => {
        $crate::log::log($level, &::std::format!($fmt $(, $arg)*), &[])
    };
}

/// Logs at trace level: `trace!("format {args}"; key = value, …)`.
#[macro_export]
macro_rules! trace {
    ($($t:tt)+) => { $crate::__log!($crate::log::Level::Trace, $($t)+) };
}

/// Logs at debug level: `debug!("format {args}"; key = value, …)`.
#[macro_export]
macro_rules! debug {
    ($($t:tt)+) => { $crate::__log!($crate::log::Level::Debug, $($t)+) };
}

/// Logs at info level: `info!("format {args}"; key = value, …)`.
#[macro_export]
macro_rules! info {
    ($($t:tt)+) => { $crate::__log!($crate::log::Level::Info, $($t)+) };
}

/// Logs at warn level: `warn!("format {args}"; key = value, …)`.
#[macro_export]
macro_rules! warn {
    ($($t:tt)+) => { $crate::__log!($crate::log::Level::Warn, $($t)+) };
}

/// Logs at error level: `error!("format {args}"; key = value, …)`.
#[macro_export]
macro_rules! error {
    ($($t:tt)+) => { $crate::__log!($crate::log::Level::Error, $($t)+) };
}
