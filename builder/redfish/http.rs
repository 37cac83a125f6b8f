//! The HTTP side of Redfish: one agent per BMC — its TLS trust (the client's CA file,
//! the system's CAs, or none), basic auth, bounded times, no proxy (BMCs sit on a
//! management network) — JSON in and out, and every failure put in words that say what
//! to do. The password is read when the session opens and never shown.

use std::time::Duration;

use base64::Engine as _;

use crate::config::client::{Bmc, Password, Trust};

/// How long a BMC may take to accept a connection.
pub const CONNECT: Duration = Duration::from_secs(10);
/// How long one request may take in all (some BMCs are slow to insert media).
const REQUEST: Duration = Duration::from_secs(120);

/// A BMC's connection: where it is, how it is trusted, who we are to it.
pub struct Http {
    agent: ureq::Agent,
    /// `https://HOST[:PORT]`.
    pub base: String,
    authorization: String,
    user: String,
    trust: Trust,
}

/// A successful reply: its body, and ETag (some BMCs want it back on PATCH).
pub struct Reply {
    pub body: String,
    pub etag: Option<String>,
}

impl Http {
    pub fn open(bmc: &Bmc) -> Result<Http, String> {
        let password = match &bmc.password {
            Password::Env(var) => std::env::var(var).map_err(|_| {
                format!("the BMC password variable {var} is not set: export it before running deliver")
            })?,
            Password::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("the BMC password file {}: {e}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        };
        let tls = crate::trust::tls_config(match &bmc.trust {
            Trust::Insecure => crate::trust::Trust::Insecure,
            Trust::Ca(path) => crate::trust::Trust::Ca(path),
            Trust::System => crate::trust::Trust::System,
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_connect(Some(CONNECT))
            .timeout_global(Some(REQUEST))
            .max_redirects(0)
            .tls_config(tls)
            .user_agent(concat!("smelt/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", bmc.username));
        Ok(Http {
            agent,
            base: bmc.url.clone(),
            authorization: format!("Basic {token}"),
            user: bmc.username.clone(),
            trust: bmc.trust.clone(),
        })
    }

    /// `GET path` (a Redfish `@odata.id`), parsed as `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<(T, Option<String>), String> {
        let reply = self.send("GET", path, None, None)?;
        let value = serde_json::from_str(&reply.body)
            .map_err(|e| format!("GET {path}: the BMC's answer is not the Redfish resource expected: {e}"))?;
        Ok((value, reply.etag))
    }

    /// POST or PATCH `body` to `path`; a 2xx is success.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        etag: Option<&str>,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &self.authorization).call(),
            (_, body) => {
                let text = body.map_or("{}".to_string(), |b| b.to_string());
                // A PATCH carries the resource's ETag back (iLO requires one).
                let request = match method {
                    "PATCH" => self.agent.patch(&url).header("If-Match", etag.unwrap_or("*")),
                    _ => self.agent.post(&url),
                };
                let request =
                    request.header("Authorization", &self.authorization).content_type("application/json");
                request.send(text)
            }
        };
        let mut response = result.map_err(|e| self.failure(&e))?;
        let status = response.status().as_u16();
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = response.body_mut().with_config().limit(4 << 20).read_to_string().unwrap_or_default();
        match status {
            200..=299 => Ok(Reply { body, etag }),
            401 | 403 => Err(format!(
                "the BMC refused user `{}` (HTTP {status}): check the password in its password-env or \
                 password-file, and that the user may use Redfish",
                self.user
            )),
            _ => Err(format!("{method} {path}: HTTP {status}: {}", redfish_message(&body))),
        }
    }

    /// A transport failure in words: unreachable, timed out, or a certificate not trusted.
    fn failure(&self, e: &ureq::Error) -> String {
        let text = e.to_string();
        match e {
            ureq::Error::Timeout(_) => format!(
                "the BMC at {} did not answer within {} s: is the address right, and its HTTPS port \
                 reachable from here?",
                self.base,
                CONNECT.as_secs()
            ),
            ureq::Error::HostNotFound => format!("the BMC's host in {} is not known to DNS", self.base),
            _ if text.contains("certificate") || matches!(e, ureq::Error::Tls(_)) => {
                let how = match &self.trust {
                    Trust::Ca(path) => format!("it is not signed by the CA in {} (ca)", path.display()),
                    Trust::System => "no CA of this system signed it".to_string(),
                    Trust::Insecure => "it was refused even unchecked".to_string(),
                };
                format!(
                    "TLS: the BMC's certificate at {} is not trusted ({text}): {how}; give the CA that \
                     signed it with ca = \"bmc-ca.pem\" in its bmc table, or insecure = true to not check it",
                    self.base
                )
            }
            ureq::Error::Io(io) => {
                format!(
                    "the BMC at {} cannot be reached: {io} (is the address right, and is it up?)",
                    self.base
                )
            }
            _ => format!("the BMC at {}: {text}", self.base),
        }
    }
}

/// What a Redfish error body says: its extended messages, else its message, else the text.
fn redfish_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.trim().chars().take(300).collect();
    };
    let error = &value["error"];
    let extended: Vec<&str> = error["@Message.ExtendedInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["Message"].as_str())
        .collect();
    if !extended.is_empty() {
        return extended.join("; ");
    }
    error["message"].as_str().map_or_else(|| body.trim().chars().take(300).collect(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redfish_errors_are_read_for_their_message() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"A general error",
            "@Message.ExtendedInfo":[{"Message":"The image could not be fetched."}]}}"#;
        assert_eq!(redfish_message(body), "The image could not be fetched.");
        assert_eq!(redfish_message(r#"{"error":{"message":"no"}}"#), "no");
        assert_eq!(redfish_message("Internal error\n"), "Internal error");
    }
}
