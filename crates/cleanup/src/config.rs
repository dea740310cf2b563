//! Configuration from flags and environment (the original system's `CLEANUP_INTERVAL`,
//! `COMPLETED_JOBS_TTL`, `FAILED_JOBS_TTL` and `ORPHANED_PROVIDERS_MAX_AGE` included, with
//! durations like `30s`, `1h`, `7d`). Anything missing or malformed stops start-up with one line
//! saying which setting and why.

use std::time::Duration;

use clap::Parser;
use gitops_authentik::{ClientConfig, ConnectionArgs, ConnectionError};
use gitops_runtime::{ProcessArgs, duration};

use crate::policy::{JobPolicy, LabelMatch, NamespaceScope, OrphanPolicy, PodPolicy};

#[derive(Debug, Parser)]
#[command(
    name = "gitops-cleanup",
    version,
    about = "Deletes finished Jobs and Pods after their retention period and sweeps orphaned authentik objects"
)]
pub struct Args {
    /// How often everything is swept in full (the safety net behind per-Job timers).
    #[arg(long, env = "CLEANUP_INTERVAL", default_value = "1h", value_parser = duration("CLEANUP_INTERVAL"))]
    pub interval: Duration,

    /// Keep Jobs that completed for this long (by completion time).
    #[arg(long, env = "COMPLETED_JOBS_TTL", default_value = "1h", value_parser = duration("COMPLETED_JOBS_TTL"))]
    pub completed_jobs_ttl: Duration,

    /// Keep Jobs that failed for this long (by failure time).
    #[arg(long, env = "FAILED_JOBS_TTL", default_value = "24h", value_parser = duration("FAILED_JOBS_TTL"))]
    pub failed_jobs_ttl: Duration,

    /// Delete an authentik object this product created once no ProxyConfig has claimed it for
    /// this long.
    #[arg(long, env = "ORPHANED_PROVIDERS_MAX_AGE", default_value = "7d", value_parser = duration("ORPHANED_PROVIDERS_MAX_AGE"))]
    pub orphaned_providers_max_age: Duration,

    /// Log, count and report (Events) what would be deleted; delete nothing.
    #[arg(long, env = "DRY_RUN", default_value_t = false, action = clap::ArgAction::Set)]
    pub dry_run: bool,

    /// Only these namespaces (comma-separated); all when empty.
    #[arg(long, env = "NAMESPACES_INCLUDE", value_delimiter = ',')]
    pub namespaces_include: Vec<String>,

    /// Never these namespaces (comma-separated).
    #[arg(long, env = "NAMESPACES_EXCLUDE", value_delimiter = ',')]
    pub namespaces_exclude: Vec<String>,

    /// Only Jobs matching this label selector (Kubernetes syntax, e.g. `team=a,tier!=db`).
    #[arg(long, env = "JOB_LABEL_SELECTOR")]
    pub job_label_selector: Option<String>,

    /// Never Jobs carrying one of these labels (comma-separated `key` or `key=value`).
    #[arg(
        long,
        env = "EXCLUDED_JOB_LABELS",
        value_delimiter = ',',
        default_value = "helm.sh/hook"
    )]
    pub excluded_job_labels: Vec<String>,

    /// Also delete Jobs owned by a CronJob (normally its history limits own them).
    #[arg(long, env = "CLEANUP_CRONJOB_JOBS", default_value_t = false, action = clap::ArgAction::Set)]
    pub cleanup_cronjob_jobs: bool,

    /// At most this many deletions per interval; the rest wait for the next one.
    #[arg(long, env = "MAX_DELETIONS_PER_CYCLE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_deletions_per_cycle: u32,

    /// At most this many deletions per second (client-side rate limit).
    #[arg(long, env = "DELETE_RATE", default_value_t = 10.0, value_parser = parse_rate)]
    pub delete_rate: f64,

    /// Delete finished Pods that have no controlling owner once older than ORPHAN_POD_TTL.
    #[arg(long, env = "POD_CLEANUP", default_value_t = false, action = clap::ArgAction::Set)]
    pub pod_cleanup: bool,

    /// Keep finished Pods without a controlling owner for this long.
    #[arg(long, env = "ORPHAN_POD_TTL", default_value = "1h", value_parser = duration("ORPHAN_POD_TTL"))]
    pub orphan_pod_ttl: Duration,

    /// Force-delete Pods stuck terminating (only in STUCK_POD_NAMESPACES).
    #[arg(long, env = "STUCK_POD_CLEANUP", default_value_t = false, action = clap::ArgAction::Set)]
    pub stuck_pod_cleanup: bool,

    /// Namespaces where stuck Pods may be force-deleted (comma-separated).
    #[arg(long, env = "STUCK_POD_NAMESPACES", value_delimiter = ',')]
    pub stuck_pod_namespaces: Vec<String>,

    /// A Pod counts as stuck this long after its deletion grace period ended.
    #[arg(long, env = "STUCK_POD_AFTER", default_value = "5m", value_parser = duration("STUCK_POD_AFTER"))]
    pub stuck_pod_after: Duration,

    /// Sweep orphaned authentik objects (needs AUTHENTIK_HOST and a token).
    #[arg(long, env = "ORPHAN_SWEEP", default_value_t = true, action = clap::ArgAction::Set)]
    pub orphan_sweep: bool,

    /// Where authentik is and how to authenticate (shared with service-discovery); without a
    /// host and token the orphan sweep is off.
    #[command(flatten)]
    pub authentik: ConnectionArgs,

    /// Observability, leadership, logging and scope (shared with service-discovery). With
    /// WATCH_NAMESPACE, only Jobs, Pods and the ownership records claimed from it.
    #[command(flatten)]
    pub process: ProcessArgs,
}

/// Validated settings the controller runs with.
#[derive(Debug)]
pub struct Settings {
    pub interval: Duration,
    pub dry_run: bool,
    pub jobs: JobPolicy,
    pub job_label_selector: Option<String>,
    pub pods: PodPolicy,
    pub orphans: OrphanPolicy,
    /// `None`: the orphan sweep is off (disabled, or no authentik settings).
    pub authentik: Option<ClientConfig>,
    pub max_deletions_per_cycle: u32,
    pub delete_rate: f64,
    pub watch_namespace: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} (or ORPHAN_SWEEP=false)")]
    Authentik(#[from] ConnectionError),
    #[error("CLEANUP_INTERVAL must be at least 1s")]
    IntervalTooShort,
    #[error(
        "STUCK_POD_CLEANUP needs STUCK_POD_NAMESPACES: force-deleting is limited to an allowlist"
    )]
    NoStuckPodNamespaces,
    #[error("EXCLUDED_JOB_LABELS entry {0:?} is not `key` or `key=value`")]
    BadExcludedLabel(String),
}

impl Args {
    /// Checks everything and reads the token; the token is never printed. (The authentik URL
    /// is checked when the client is built, the label selector by the API server at start-up.)
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        if self.interval < Duration::from_secs(1) {
            return Err(ConfigError::IntervalTooShort);
        }
        let stuck_namespaces = non_empty(self.stuck_pod_namespaces);
        if self.stuck_pod_cleanup && stuck_namespaces.is_empty() {
            return Err(ConfigError::NoStuckPodNamespaces);
        }
        let excluded_labels = non_empty(self.excluded_job_labels)
            .into_iter()
            .map(|entry| LabelMatch::parse(&entry).ok_or(ConfigError::BadExcludedLabel(entry)))
            .collect::<Result<Vec<_>, _>>()?;
        let authentik = match self.orphan_sweep {
            true => self.authentik.into_config()?,
            false => None,
        };
        let namespaces = NamespaceScope::new(
            non_empty(self.namespaces_include),
            non_empty(self.namespaces_exclude),
        );
        Ok(Settings {
            interval: self.interval,
            dry_run: self.dry_run,
            jobs: JobPolicy {
                completed_ttl: self.completed_jobs_ttl,
                failed_ttl: self.failed_jobs_ttl,
                cleanup_cronjob_jobs: self.cleanup_cronjob_jobs,
                excluded_labels,
                namespaces: namespaces.clone(),
            },
            job_label_selector: self.job_label_selector.filter(|s| !s.trim().is_empty()),
            pods: PodPolicy {
                finished: self.pod_cleanup.then_some(self.orphan_pod_ttl),
                stuck_after: self.stuck_pod_cleanup.then_some(self.stuck_pod_after),
                stuck_namespaces: stuck_namespaces.into_iter().collect(),
                namespaces,
            },
            orphans: OrphanPolicy {
                max_age: self.orphaned_providers_max_age,
            },
            authentik,
            max_deletions_per_cycle: self.max_deletions_per_cycle,
            delete_rate: self.delete_rate,
            watch_namespace: self.process.watch_namespace(),
        })
    }
}

fn non_empty(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{value:?} is not a positive number of deletions per second"
        )),
    }
}

#[cfg(test)]
mod tests {
    use gitops_authentik::{ApiToken, TokenSourceError};

    use super::*;

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["gitops-cleanup"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn defaults_match_the_original_system() {
        let settings = args(&[]).expect("parses").into_settings().expect("valid");
        assert_eq!(settings.interval, Duration::from_secs(3600));
        assert_eq!(settings.jobs.completed_ttl, Duration::from_secs(3600));
        assert_eq!(settings.jobs.failed_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(settings.orphans.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(
            settings.jobs.excluded_labels,
            vec![LabelMatch::parse("helm.sh/hook").expect("key")]
        );
        assert!(!settings.jobs.cleanup_cronjob_jobs);
        assert!(!settings.dry_run);
        assert_eq!(settings.pods.finished, None);
        assert_eq!(settings.pods.stuck_after, None);
        assert!(
            settings.authentik.is_none(),
            "no authentik settings: the orphan sweep is off"
        );
    }

    #[test]
    fn human_durations_are_accepted() {
        let settings = args(&[
            "--interval",
            "30s",
            "--orphaned-providers-max-age",
            "2d",
            "--completed-jobs-ttl",
            "90m",
        ])
        .expect("parses")
        .into_settings()
        .expect("valid");
        assert_eq!(settings.interval, Duration::from_secs(30));
        assert_eq!(settings.orphans.max_age, Duration::from_secs(2 * 86400));
        assert_eq!(settings.jobs.completed_ttl, Duration::from_secs(90 * 60));
    }

    #[test]
    fn malformed_settings_are_one_clear_line() {
        let error = args(&["--failed-jobs-ttl", "tomorrow"])
            .expect_err("bad duration")
            .to_string();
        assert!(
            error.contains("tomorrow") && error.contains("FAILED_JOBS_TTL"),
            "{error}"
        );
        let error = args(&["--delete-rate", "0"])
            .expect_err("zero rate")
            .to_string();
        assert!(error.contains("deletions per second"), "{error}");
        let error = args(&["--max-deletions-per-cycle", "0"])
            .expect_err("zero cap")
            .to_string();
        assert!(error.contains("max-deletions-per-cycle"), "{error}");

        let cases: [(&[&str], &str); 5] = [
            (&["--interval", "500ms"], "CLEANUP_INTERVAL"),
            (&["--stuck-pod-cleanup", "true"], "STUCK_POD_NAMESPACES"),
            (
                &["--authentik-host", "http://authentik:9000"],
                "no authentik token",
            ),
            (&["--authentik-token", "secret"], "AUTHENTIK_HOST"),
            (&["--excluded-job-labels", "=x"], "EXCLUDED_JOB_LABELS"),
        ];
        for (argv, expected) in cases {
            let message = args(argv)
                .expect("parses")
                .into_settings()
                .expect_err("invalid")
                .to_string();
            assert!(message.contains(expected), "{argv:?}: {message}");
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(!message.contains("secret"), "never the token: {message}");
        }
    }

    #[test]
    fn authentik_settings_turn_the_orphan_sweep_on_unless_disabled() {
        let on = args(&[
            "--authentik-host",
            "http://a:9000",
            "--authentik-token",
            "secret-token-value",
        ])
        .expect("parses")
        .into_settings()
        .expect("valid");
        assert!(on.authentik.is_some());
        assert!(
            !format!("{on:?}").contains("secret-token-value"),
            "token never printed"
        );

        let off = args(&[
            "--authentik-host",
            "http://a:9000",
            "--orphan-sweep",
            "false",
        ])
        .expect("parses")
        .into_settings()
        .expect("valid without a token when the sweep is off");
        assert!(off.authentik.is_none());
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "file-token\n").expect("write");
        let path_arg = path.to_str().expect("utf8");
        let settings_from_file = || {
            args(&[
                "--authentik-host",
                "http://a:9000",
                "--authentik-token-file",
                path_arg,
            ])
            .expect("parses")
            .into_settings()
        };
        assert_eq!(
            settings_from_file()
                .expect("valid")
                .authentik
                .expect("on")
                .token,
            ApiToken::new("file-token")
        );

        std::fs::write(&path, "  \n").expect("write");
        let error = settings_from_file().expect_err("empty");
        assert!(matches!(
            error,
            ConfigError::Authentik(ConnectionError::Token(TokenSourceError::EmptyFile(_)))
        ));
    }

    #[test]
    fn lists_are_comma_separated_and_trimmed() {
        let settings = args(&[
            "--namespaces-include",
            "apps, batch",
            "--namespaces-exclude",
            "kube-system",
            "--excluded-job-labels",
            "helm.sh/hook,keep=yes",
            "--stuck-pod-cleanup",
            "true",
            "--stuck-pod-namespaces",
            "apps",
        ])
        .expect("parses")
        .into_settings()
        .expect("valid");
        assert!(settings.jobs.namespaces.allows("batch"));
        assert!(!settings.jobs.namespaces.allows("other"));
        assert_eq!(settings.jobs.excluded_labels.len(), 2);
        assert!(settings.pods.stuck_namespaces.contains("apps"));
    }
}
