//! Host settings: defaults, overridden by a TOML file, overridden by
//! environment variables and command-line flags (clap merges those two).
//!
//! Everything the host needs to start is resolved here once into [`Settings`];
//! nothing else reads the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::egress::breaker::BreakerConfig;
use crate::egress::budget::DEFAULT_MAX_WAITERS;
use crate::egress::retry::RetryPolicy;

/// Errors while assembling the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting `{name}`: {message}")]
    Invalid {
        /// Setting name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Default listen address: loopback only, so a fresh host is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./plugboard-data";

/// Resource envelope for guest code and request sizes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline of one invocation (instantiate + call).
    pub invoke_timeout: Duration,
    /// Cap on the sum of all linear memories of one guest instance.
    pub max_memory_bytes: u64,
    /// Largest component upload accepted.
    pub max_component_bytes: usize,
    /// Largest JSON request body accepted (instances, invocations).
    pub max_request_bytes: usize,
    /// How many guest instances may exist at once (sizes the pooling allocator).
    pub max_instances: u32,
    /// How many idle, warm guest instances the host keeps for reuse by
    /// later calls of the *same* instance with the same config (0: a fresh
    /// guest instance for every call).
    pub warm_instances: u32,
    /// Where Linux can list the pages a guest wrote (6.7+): how many bytes
    /// of them a freed linear memory slot resets in place and keeps
    /// resident for its next instance (0: decommit them all).
    pub pool_keep_resident_bytes: usize,
    /// Fresh guest instances get their data by copy and their function
    /// tables filled up front, instead of a copy-on-write mapping of the
    /// memory image and tables filled on first use (see
    /// `runtime/engine.rs`: faster for small guests in a burst, a private
    /// copy of the whole image per instance for large ones).
    pub eager_instance_init: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            invoke_timeout: Duration::from_secs(30),
            max_memory_bytes: 256 << 20,
            // JS and Python components are 10-40 MiB; leave headroom.
            max_component_bytes: 128 << 20,
            max_request_bytes: 4 << 20,
            max_instances: 1000,
            warm_instances: 256,
            // See `runtime/engine.rs` for the measurements behind 1 MiB.
            pool_keep_resident_bytes: 1 << 20,
            eager_instance_init: false,
        }
    }
}

/// Outbound HTTP policy and per-request limits.
#[derive(Debug, Clone)]
pub struct EgressSettings {
    /// Address ranges guests may reach even though they are special
    /// (loopback, private, …). Empty: public addresses only.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Outbound requests one invocation may send.
    pub max_requests: u32,
    /// Largest request body a guest may send.
    pub max_request_body_bytes: u64,
    /// Largest response body a guest may receive.
    pub max_response_body_bytes: u64,
    /// DNS resolution + TCP connect.
    pub connect_timeout: Duration,
    /// From sending the request to the response headers.
    pub first_byte_timeout: Duration,
    /// Longest pause between two chunks of a response body.
    pub between_bytes_timeout: Duration,
    /// Automatic retries of idempotent requests.
    pub retry: RetryPolicy,
    /// Circuit breaker thresholds (one circuit per upstream).
    pub breaker: BreakerConfig,
    /// Requests that may wait on one rate budget at once.
    pub max_queued: usize,
    /// Trust anchors for outbound HTTPS besides the webpki (Mozilla) roots:
    /// a private CA, or a test upstream's; parsed once, here.
    pub extra_roots: Vec<rustls::pki_types::TrustAnchor<'static>>,
    /// Offer HTTP/2 to HTTPS upstreams (ALPN), so concurrent calls to one
    /// upstream share a connection; HTTP/1.1 only when false.
    pub http2: bool,
}

impl Default for EgressSettings {
    fn default() -> Self {
        Self {
            allow_cidrs: Vec::new(),
            max_requests: 100,
            max_request_body_bytes: 16 << 20,
            max_response_body_bytes: 32 << 20,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            max_queued: DEFAULT_MAX_WAITERS,
            extra_roots: Vec::new(),
            http2: true,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved settings of one host process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to bind the API to.
    pub listen: SocketAddr,
    /// Directory holding the store and the admin token.
    pub data_dir: PathBuf,
    /// Resource limits.
    pub limits: Limits,
    /// Outbound HTTP policy.
    pub egress: EgressSettings,
    /// Log format.
    pub log_format: LogFormat,
    /// The master key from `PLUGBOARD_MASTER_KEY`, if set (otherwise the
    /// key file in the data directory is used).
    pub master_key: Option<crate::vault::Secret>,
    /// Rule action delivery.
    pub jobs: JobSettings,
    /// How long audit records are kept; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
}

/// Default audit retention, in days.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 90;

/// How rule actions are delivered.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Attempts per job before it is dead-lettered.
    pub max_attempts: u32,
    /// Backoff ceiling of the first retry; doubles per attempt (full jitter).
    pub backoff: Duration,
    /// Accept events and enqueue jobs, but run none (maintenance).
    pub paused: bool,
}

/// Values that may come from flags or environment (all optional, so the file
/// and the defaults can fill the gaps).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// TOML config file.
    #[arg(long, env = "PLUGBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "PLUGBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory (created if missing).
    #[arg(long, env = "PLUGBOARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Wall-clock deadline of one invocation, in milliseconds.
    #[arg(long, env = "PLUGBOARD_INVOKE_TIMEOUT_MS")]
    pub invoke_timeout_ms: Option<u64>,
    /// Memory cap of one guest instance, in MiB.
    #[arg(long, env = "PLUGBOARD_MAX_MEMORY_MIB")]
    pub max_memory_mib: Option<u64>,
    /// Largest component upload, in MiB.
    #[arg(long, env = "PLUGBOARD_MAX_COMPONENT_MIB")]
    pub max_component_mib: Option<usize>,
    /// Largest JSON request body, in KiB.
    #[arg(long, env = "PLUGBOARD_MAX_REQUEST_KIB")]
    pub max_request_kib: Option<usize>,
    /// Maximum number of guest instances alive at once.
    #[arg(long, env = "PLUGBOARD_MAX_INSTANCES")]
    pub max_instances: Option<u32>,
    /// Idle guest instances kept warm for reuse by the same instance's
    /// next calls (0: a fresh guest instance for every call).
    #[arg(long, env = "PLUGBOARD_WARM_INSTANCES")]
    pub warm_instances: Option<u32>,
    /// On Linux 6.7+: KiB of the pages a guest wrote that a freed guest
    /// memory slot resets in place and keeps for the next instance (faster
    /// fresh instances; each slot used holds up to this much). 0: release
    /// them all.
    #[arg(long, env = "PLUGBOARD_POOL_KEEP_RESIDENT_KIB")]
    pub pool_keep_resident_kib: Option<usize>,
    /// Give fresh guest instances their data by copy and fill their
    /// function tables up front: faster bursts of small guests (measured
    /// with the Rust `rest` connector), but every fresh instance of a large
    /// (JavaScript, Python) guest holds a private copy of its whole memory
    /// image. Changing it recompiles stored connectors once.
    #[arg(long, env = "PLUGBOARD_EAGER_INSTANCE_INIT")]
    pub eager_instance_init: bool,
    /// Log format.
    #[arg(long, env = "PLUGBOARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Let guests reach this special address range (loopback, private, …);
    /// repeatable, e.g. `--egress-allow-cidr 127.0.0.1/32`.
    #[arg(
        long = "egress-allow-cidr",
        env = "PLUGBOARD_EGRESS_ALLOW_CIDR",
        value_delimiter = ','
    )]
    pub egress_allow_cidrs: Vec<ipnet::IpNet>,
    /// Also trust the CA certificates in this PEM file for outbound HTTPS
    /// (the webpki roots stay trusted); repeatable.
    #[arg(
        long = "egress-ca-file",
        env = "PLUGBOARD_EGRESS_CA_FILE",
        value_delimiter = ','
    )]
    pub egress_ca_files: Vec<PathBuf>,
    /// Outbound requests one invocation may send.
    #[arg(long, env = "PLUGBOARD_EGRESS_MAX_REQUESTS")]
    pub egress_max_requests: Option<u32>,
    /// Largest response body a guest may receive, in KiB.
    #[arg(long, env = "PLUGBOARD_EGRESS_MAX_RESPONSE_KIB")]
    pub egress_max_response_kib: Option<u64>,
    /// Time from sending a request to its response headers, in milliseconds.
    #[arg(long, env = "PLUGBOARD_EGRESS_FIRST_BYTE_TIMEOUT_MS")]
    pub egress_first_byte_timeout_ms: Option<u64>,
    /// Attempts per idempotent outbound request, including the first
    /// (1 disables retries).
    #[arg(long, env = "PLUGBOARD_EGRESS_RETRY_ATTEMPTS")]
    pub egress_retry_attempts: Option<u32>,
    /// Attempts per rule action before it is dead-lettered.
    #[arg(long, env = "PLUGBOARD_JOBS_MAX_ATTEMPTS")]
    pub jobs_max_attempts: Option<u32>,
    /// First retry backoff of rule actions, in milliseconds (doubles).
    #[arg(long, env = "PLUGBOARD_JOBS_BACKOFF_MS")]
    pub jobs_backoff_ms: Option<u64>,
    /// Accept webhooks and enqueue rule actions, but run none until the
    /// host starts without this flag.
    #[arg(long, env = "PLUGBOARD_JOBS_PAUSED")]
    pub jobs_paused: bool,
    /// Consecutive failures of an upstream that open its circuit.
    #[arg(long, env = "PLUGBOARD_EGRESS_BREAKER_THRESHOLD")]
    pub egress_breaker_threshold: Option<u32>,
    /// How long an open circuit refuses requests before a probe, in
    /// milliseconds.
    #[arg(long, env = "PLUGBOARD_EGRESS_BREAKER_OPEN_MS")]
    pub egress_breaker_open_ms: Option<u64>,
    /// Days audit records are kept (default 90; 0 keeps them forever).
    #[arg(long, env = "PLUGBOARD_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
}

/// The shape of the TOML config file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    egress: FileEgress,
    #[serde(default)]
    audit: FileAudit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    retention_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEgress {
    #[serde(default)]
    allow_cidrs: Vec<ipnet::IpNet>,
    max_requests: Option<u32>,
    max_request_body_kib: Option<u64>,
    max_response_body_kib: Option<u64>,
    connect_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
    between_bytes_timeout_ms: Option<u64>,
    max_queued: Option<usize>,
    retry_attempts: Option<u32>,
    retry_base_delay_ms: Option<u64>,
    retry_max_delay_ms: Option<u64>,
    breaker_threshold: Option<u32>,
    breaker_window_ms: Option<u64>,
    breaker_open_ms: Option<u64>,
    #[serde(default)]
    ca_files: Vec<PathBuf>,
    http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    invoke_timeout_ms: Option<u64>,
    max_memory_mib: Option<u64>,
    max_component_mib: Option<usize>,
    max_request_kib: Option<usize>,
    max_instances: Option<u32>,
    warm_instances: Option<u32>,
    pool_keep_resident_kib: Option<usize>,
    eager_instance_init: Option<bool>,
}

impl Settings {
    /// Resolves settings: flags/env over file over defaults.
    pub fn resolve(overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = match &overrides.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Limits::default();
        let fl = &file.limits;
        let timeout_ms = overrides
            .invoke_timeout_ms
            .or(fl.invoke_timeout_ms)
            .unwrap_or(defaults.invoke_timeout.as_millis() as u64);
        let memory_mib = overrides
            .max_memory_mib
            .or(fl.max_memory_mib)
            .unwrap_or(defaults.max_memory_bytes >> 20);
        let component_mib = overrides
            .max_component_mib
            .or(fl.max_component_mib)
            .unwrap_or(defaults.max_component_bytes >> 20);
        let request_kib = overrides
            .max_request_kib
            .or(fl.max_request_kib)
            .unwrap_or(defaults.max_request_bytes >> 10);
        let max_instances = overrides
            .max_instances
            .or(fl.max_instances)
            .unwrap_or(defaults.max_instances);

        check_range("invoke_timeout_ms", timeout_ms, 10, 15 * 60 * 1000)?;
        check_range("max_memory_mib", memory_mib, 1, 4096)?;
        check_range("max_component_mib", component_mib as u64, 1, 1024)?;
        check_range("max_request_kib", request_kib as u64, 1, 1024 * 1024)?;
        check_range("max_instances", u64::from(max_instances), 1, 100_000)?;
        let warm_instances = overrides
            .warm_instances
            .or(fl.warm_instances)
            .unwrap_or(defaults.warm_instances.min(max_instances / 4));
        // Warm instances hold pooling-allocator slots: at most half of them.
        check_range(
            "warm_instances",
            u64::from(warm_instances),
            0,
            u64::from(max_instances / 2),
        )?;
        let keep_resident_kib = overrides
            .pool_keep_resident_kib
            .or(fl.pool_keep_resident_kib)
            .unwrap_or(defaults.pool_keep_resident_bytes >> 10);
        check_range(
            "pool_keep_resident_kib",
            keep_resident_kib as u64,
            0,
            memory_mib << 10,
        )?;
        let retention_days = overrides
            .audit_retention_days
            .or(file.audit.retention_days)
            .unwrap_or(DEFAULT_AUDIT_RETENTION_DAYS);
        check_range("audit retention_days", u64::from(retention_days), 0, 36_500)?;

        let egress = resolve_egress(overrides, &file.egress)?;
        let listen = match overrides.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().map_err(|e| ConfigError::Invalid {
                name: "listen",
                message: format!("{e}"),
            })?,
        };
        Ok(Self {
            listen,
            data_dir: overrides
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            limits: Limits {
                invoke_timeout: Duration::from_millis(timeout_ms),
                max_memory_bytes: memory_mib << 20,
                max_component_bytes: component_mib << 20,
                max_request_bytes: request_kib << 10,
                max_instances,
                warm_instances,
                pool_keep_resident_bytes: keep_resident_kib << 10,
                eager_instance_init: overrides.eager_instance_init
                    || fl
                        .eager_instance_init
                        .unwrap_or(defaults.eager_instance_init),
            },
            egress,
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            // Read here, not as a flag: a key on the command line would show
            // in `ps` and shell history.
            jobs: JobSettings {
                max_attempts: count(overrides.jobs_max_attempts, 5, "jobs max_attempts", 100)?,
                backoff: Duration::from_millis(
                    overrides
                        .jobs_backoff_ms
                        .unwrap_or(1000)
                        .clamp(1, 3_600_000),
                ),
                paused: overrides.jobs_paused,
            },
            audit_retention: (retention_days > 0)
                .then(|| Duration::from_secs(u64::from(retention_days) * 86_400)),
            master_key: std::env::var(crate::vault::key::KEY_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(crate::vault::Secret::new),
        })
    }
}

fn resolve_egress(o: &Overrides, f: &FileEgress) -> Result<EgressSettings, ConfigError> {
    let d = EgressSettings::default();
    let ms =
        |v: Option<u64>, default: Duration, name: &'static str| -> Result<Duration, ConfigError> {
            let v = v.unwrap_or(default.as_millis() as u64);
            check_range(name, v, 1, 15 * 60 * 1000)?;
            Ok(Duration::from_millis(v))
        };
    let kib = |v: Option<u64>, default: u64, name: &'static str| -> Result<u64, ConfigError> {
        let v = v.unwrap_or(default >> 10);
        check_range(name, v, 1, 4 << 20)?;
        Ok(v << 10)
    };
    let max_requests = o
        .egress_max_requests
        .or(f.max_requests)
        .unwrap_or(d.max_requests);
    check_range("egress max_requests", u64::from(max_requests), 1, 100_000)?;
    // Flags and file add up: the file can hold the standing ranges and a
    // flag add one for a test run.
    let mut allow_cidrs = f.allow_cidrs.clone();
    allow_cidrs.extend(o.egress_allow_cidrs.iter().copied());
    let ca_files = f.ca_files.iter().chain(&o.egress_ca_files);
    Ok(EgressSettings {
        extra_roots: load_roots(ca_files)?,
        http2: f.http2.unwrap_or(d.http2),
        allow_cidrs,
        max_requests,
        max_request_body_bytes: kib(
            f.max_request_body_kib,
            d.max_request_body_bytes,
            "egress max_request_body_kib",
        )?,
        max_response_body_bytes: kib(
            o.egress_max_response_kib.or(f.max_response_body_kib),
            d.max_response_body_bytes,
            "egress max_response_body_kib",
        )?,
        connect_timeout: ms(
            f.connect_timeout_ms,
            d.connect_timeout,
            "egress connect_timeout_ms",
        )?,
        first_byte_timeout: ms(
            o.egress_first_byte_timeout_ms.or(f.first_byte_timeout_ms),
            d.first_byte_timeout,
            "egress first_byte_timeout_ms",
        )?,
        between_bytes_timeout: ms(
            f.between_bytes_timeout_ms,
            d.between_bytes_timeout,
            "egress between_bytes_timeout_ms",
        )?,
        retry: RetryPolicy {
            max_attempts: count(
                o.egress_retry_attempts.or(f.retry_attempts),
                d.retry.max_attempts,
                "egress retry_attempts",
                10,
            )?,
            base_delay: ms(
                f.retry_base_delay_ms,
                d.retry.base_delay,
                "egress retry_base_delay_ms",
            )?,
            max_delay: ms(
                f.retry_max_delay_ms,
                d.retry.max_delay,
                "egress retry_max_delay_ms",
            )?,
        },
        breaker: BreakerConfig {
            failure_threshold: count(
                o.egress_breaker_threshold.or(f.breaker_threshold),
                d.breaker.failure_threshold,
                "egress breaker_threshold",
                1000,
            )?,
            window: ms(
                f.breaker_window_ms,
                d.breaker.window,
                "egress breaker_window_ms",
            )?,
            open_for: ms(
                o.egress_breaker_open_ms.or(f.breaker_open_ms),
                d.breaker.open_for,
                "egress breaker_open_ms",
            )?,
            half_open_max_probes: d.breaker.half_open_max_probes,
        },
        max_queued: {
            let v = f.max_queued.unwrap_or(d.max_queued);
            check_range("egress max_queued", v as u64, 1, 1_000_000)?;
            v
        },
    })
}

/// Reads the certificates of PEM files into trust anchors, so a wrong file
/// stops the host at start-up, not its first outbound call.
fn load_roots<'a>(
    paths: impl Iterator<Item = &'a PathBuf>,
) -> Result<Vec<rustls::pki_types::TrustAnchor<'static>>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let invalid = |path: &Path, message: String| ConfigError::Invalid {
        name: "egress ca_file",
        message: format!("{}: {message}", path.display()),
    };
    let mut store = rustls::RootCertStore::empty();
    for path in paths {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(path, e.to_string()))?;
        if certs.is_empty() {
            return Err(invalid(path, "holds no PEM certificate".into()));
        }
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| invalid(path, format!("not a usable CA certificate: {e}")))?;
        }
    }
    Ok(store.roots)
}

fn count(v: Option<u32>, default: u32, name: &'static str, max: u32) -> Result<u32, ConfigError> {
    let v = v.unwrap_or(default);
    check_range(name, u64::from(v), 1, u64::from(max))?;
    Ok(v)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn check_range(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name,
            message: format!("{value} is outside {min}..={max}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("pb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plugboard.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[limits]\ninvoke_timeout_ms = 500\nmax_memory_mib = 64\n\
             eager_instance_init = true\n\
             [egress]\nallow_cidrs = [\"10.0.0.0/8\"]\nmax_requests = 7\n\
             [audit]\nretention_days = 7\n",
        )
        .unwrap();
        let overrides = Overrides {
            config: Some(path),
            max_memory_mib: Some(32),
            egress_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
            ..Overrides::default()
        };
        let s = Settings::resolve(&overrides).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.limits.invoke_timeout, Duration::from_millis(500));
        assert_eq!(s.limits.max_memory_bytes, 32 << 20);
        assert!(s.limits.eager_instance_init, "from the file");
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let cidrs: Vec<String> = s.egress.allow_cidrs.iter().map(|c| c.to_string()).collect();
        assert_eq!(cidrs, ["10.0.0.0/8", "127.0.0.1/32"]);
        assert_eq!(s.egress.max_requests, 7);
        assert_eq!(s.audit_retention, Some(Duration::from_secs(7 * 86_400)));
        let keep = Settings::resolve(&Overrides {
            audit_retention_days: Some(0),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(keep.audit_retention, None, "0 keeps records forever");
        let default = Settings::resolve(&Overrides::default()).unwrap();
        assert!(!default.limits.eager_instance_init, "off by default");
        assert_eq!(
            default.audit_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_keys_and_bad_ranges_are_rejected() {
        let dir = std::env::temp_dir().join(format!("pb-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Settings::resolve(&Overrides {
            config: Some(path),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);

        let err = Settings::resolve(&Overrides {
            invoke_timeout_ms: Some(0),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("invoke_timeout_ms"), "{err}");
    }

    #[test]
    fn pool_keep_resident_defaults_to_1_mib_and_stays_within_the_memory_cap() {
        let default = Settings::resolve(&Overrides::default()).unwrap();
        assert_eq!(default.limits.pool_keep_resident_bytes, 1 << 20);
        let none = Settings::resolve(&Overrides {
            pool_keep_resident_kib: Some(0),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(none.limits.pool_keep_resident_bytes, 0);
        // More than a guest may have is a mistake, not a larger cache.
        let err = Settings::resolve(&Overrides {
            max_memory_mib: Some(16),
            pool_keep_resident_kib: Some(32 << 10),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("pool_keep_resident_kib"), "{err}");
    }
}
