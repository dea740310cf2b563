//! `gitops-service-discovery check-authentik`: the chart's `helm test`. It reads the same
//! settings as the controller (AUTHENTIK_HOST, AUTHENTIK_TOKEN_FILE, AUTHENTIK_TIMEOUT), asks
//! authentik who the token belongs to, and prints one line. The image needs no shell or curl,
//! so air-gapped clusters mirror nothing extra for the test.

use std::process::ExitCode;

use gitops_authentik::{AuthentikClient, ConnectionArgs, Error, SessionUser};

/// Runs the check and prints its one line (stdout when ok, stderr otherwise); the token is
/// never printed.
pub async fn run(connection: ConnectionArgs, token_source: &str) -> ExitCode {
    let config = match connection.into_config() {
        Ok(Some(config)) => config,
        Ok(None) => {
            eprintln!(
                "error: no authentik connection: set AUTHENTIK_HOST and AUTHENTIK_TOKEN_FILE"
            );
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let host = config.base_url.clone();
    let outcome = match AuthentikClient::new(config) {
        Ok(client) => client.current_user().await,
        Err(error) => Err(error),
    };
    let verdict = verdict(&host, token_source, outcome);
    if verdict.ok {
        println!("{}", verdict.line);
        ExitCode::SUCCESS
    } else {
        eprintln!("{}", verdict.line);
        ExitCode::FAILURE
    }
}

/// What the check says about authentik's answer.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    ok: bool,
    line: String,
}

fn verdict(host: &str, token_source: &str, outcome: Result<SessionUser, Error>) -> Verdict {
    let (ok, line) = match outcome {
        Ok(me) => (
            true,
            format!(
                "ok: authentik at {host} accepts the token from {token_source} (user {})",
                me.user.username
            ),
        ),
        Err(Error::Unauthorized { status, detail, .. }) => (
            false,
            format!(
                "error: authentik at {host} answered HTTP {status} ({detail}): the token in \
                 {token_source} is wrong or its user lacks rights"
            ),
        ),
        Err(error @ Error::Transient { .. }) => (
            false,
            format!("error: authentik is not reachable at {host}: {error}"),
        ),
        Err(error) => (false, format!("error: authentik at {host}: {error}")),
    };
    Verdict { ok, line }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "http://authentik:9000";
    const SOURCE: &str = "Secret flux-system/authentik-token";

    #[test]
    fn a_refused_token_names_where_it_comes_from() {
        let verdict = verdict(
            HOST,
            SOURCE,
            Err(Error::Unauthorized {
                endpoint: "GET /core/users/me/".into(),
                status: 403,
                detail: "Token invalid/expired".into(),
            }),
        );
        assert!(!verdict.ok);
        assert_eq!(
            verdict.line,
            "error: authentik at http://authentik:9000 answered HTTP 403 (Token invalid/expired): \
             the token in Secret flux-system/authentik-token is wrong or its user lacks rights"
        );
    }

    #[test]
    fn a_failed_connection_says_not_reachable() {
        let verdict = verdict(
            HOST,
            SOURCE,
            Err(Error::Transient {
                endpoint: "GET /core/users/me/".into(),
                reason: "connection refused".into(),
            }),
        );
        assert!(!verdict.ok);
        assert!(
            verdict
                .line
                .starts_with("error: authentik is not reachable at http://authentik:9000: "),
            "{}",
            verdict.line
        );
    }
}
