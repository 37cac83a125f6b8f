//! Each node's BMC: its `bmc` table over the client's `[bmc]` defaults, checked into a
//! [`Bmc`]: an `https://` (or, warned, `http://`) URL, a user, exactly one password
//! source — a variable or a file, never the password itself in client.toml — and how
//! its certificate is trusted (a CA file, or `insecure`).

use std::path::Path;

use super::{keys, with, Checker};
use crate::config::client::raw::RawBmc;
use crate::config::client::{Bmc, Password, Trust};

impl Checker<'_> {
    /// Node `i`'s BMC, when it has one (a `url`, its own or the client's).
    pub(super) fn bmc(
        &mut self,
        i: usize,
        who: &str,
        own: Option<&RawBmc>,
        client: Option<&RawBmc>,
    ) -> Option<Bmc> {
        let node_at = with(&keys(&["nodes", &i.to_string()]), "bmc");
        let client_at = keys(&["bmc"]);
        // Each key where it was set: the node's table, else the client's.
        let pick = |get: &dyn Fn(&RawBmc) -> bool| match (own, client) {
            (Some(o), _) if get(o) => Some(node_at.clone()),
            (_, Some(c)) if get(c) => Some(client_at.clone()),
            _ => None,
        };
        for (raw, at) in [(own, &node_at), (client, &client_at)] {
            if raw.is_some_and(|r| r.password.is_some()) {
                self.err(
                    &with(at, "password"),
                    format!("{who}: a BMC password written in client.toml would travel with it (into git, into bundles)"),
                    Some("put it in a variable, password-env = \"ACME_BMC_PASSWORD\", or in a file only you can read, password-file = \"bmc.pass\" (mode 0600)"),
                );
            }
        }
        if own.is_none() && client.is_none_or(|c| c.url.is_none()) {
            return None;
        }
        let merged = |f: fn(&RawBmc) -> Option<String>| own.and_then(f).or_else(|| client.and_then(f));
        let url_at = pick(&|r| r.url.is_some()).unwrap_or(node_at.clone());
        let Some(url) = merged(|r| r.url.clone()) else {
            self.err(
                &node_at,
                format!("{who}: its bmc has no url"),
                Some("url = \"https://10.1.0.21\": the BMC's address"),
            );
            return None;
        };
        let url = self.bmc_url(&with(&url_at, "url"), who, &url)?;
        let username = merged(|r| r.username.clone()).or_else(|| {
            self.err(
                &node_at,
                format!("{who}: its bmc has no username"),
                Some("username = \"admin\", here or in [bmc]"),
            );
            None
        });
        let password = self.bmc_password(
            who,
            &node_at,
            pick(&|r| r.password_env.is_some() || r.password_file.is_some()),
            merged(|r| r.password_env.clone()),
            merged(|r| r.password_file.clone()),
        );
        let insecure =
            own.and_then(|r| r.insecure).or_else(|| client.and_then(|r| r.insecure)).unwrap_or(false);
        let trust = match (merged(|r| r.ca.clone()), insecure) {
            (Some(_), true) => {
                let at = pick(&|r| r.insecure.is_some()).unwrap_or(node_at.clone());
                self.err(&with(&at, "insecure"), format!("{who}: its bmc has both a ca and insecure = true"), Some("keep ca (the BMC's certificate is checked against it), or insecure (it is not checked)"));
                None
            }
            (Some(ca), false) => {
                let path = self.relative(&ca);
                if !path.is_file() {
                    let at = pick(&|r| r.ca.is_some()).unwrap_or(node_at.clone());
                    self.err(
                        &with(&at, "ca"),
                        format!("{who}: the BMC CA file {} does not exist", path.display()),
                        Some(
                            "a PEM file of the CA that signed the BMC's certificate, relative to client.toml",
                        ),
                    );
                }
                Some(Trust::Ca(path))
            }
            (None, true) => Some(Trust::Insecure),
            (None, false) => Some(Trust::System),
        };
        Some(Bmc {
            url,
            username: username?,
            password: password?,
            trust: trust?,
            system: merged(|r| r.system.clone()),
        })
    }

    /// `[deliver] check-in`: an http(s) URL with a host, which nodes POST to.
    pub(super) fn check_in(&mut self, url: &str) -> Option<String> {
        let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.split('/').next().is_none_or(str::is_empty))
            || url.contains(char::is_whitespace)
        {
            self.err(
                &keys(&["deliver", "check-in"]),
                format!("check-in `{url}` is not an http:// URL"),
                Some("the address nodes reach the delivering host at, e.g. check-in = \"http://10.1.0.5:8470/check-in\""),
            );
            return None;
        }
        Some(url.to_string())
    }

    fn bmc_url(&mut self, at: &[String], who: &str, url: &str) -> Option<String> {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split('/').next().unwrap_or_default());
        if host.is_none_or(str::is_empty) {
            self.err(
                at,
                format!("{who}: BMC url `{url}` is not an https:// URL"),
                Some("give the BMC's address as https://HOST[:PORT], as its web page has it"),
            );
            return None;
        }
        if url.starts_with("http://") {
            self.warn(
                at,
                format!(
                    "{who}: BMC url `{url}` is plain HTTP: its password crosses the network in the clear"
                ),
                Some("use https://, with ca = \"bmc-ca.pem\" or insecure = true"),
            );
        }
        Some(url.trim_end_matches('/').to_string())
    }

    fn bmc_password(
        &mut self,
        who: &str,
        node_at: &[String],
        set_at: Option<Vec<String>>,
        env: Option<String>,
        file: Option<String>,
    ) -> Option<Password> {
        match (env, file) {
            (Some(var), None) => Some(Password::Env(var)),
            (None, Some(path)) => Some(Password::File(self.relative(&path))),
            (Some(_), Some(_)) => {
                let at = set_at.unwrap_or(node_at.to_vec());
                self.err(
                    &at,
                    format!("{who}: its bmc has both password-env and password-file"),
                    Some("keep one"),
                );
                None
            }
            (None, None) => {
                self.err(node_at, format!("{who}: its bmc has no password source"), Some("password-env = \"ACME_BMC_PASSWORD\" (a variable) or password-file = \"bmc.pass\" (a file), here or in [bmc]"));
                None
            }
        }
    }

    /// A path of client.toml, relative to its directory.
    fn relative(&self, path: &str) -> std::path::PathBuf {
        self.file.path.parent().unwrap_or(Path::new(".")).join(path)
    }
}

/// `line` with the value of any `password = …` in it replaced by `********`.
pub(super) fn masked(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("password") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let after = &from["password".len()..];
        let is_key = !before.ends_with(|c: char| c.is_alphanumeric() || c == '-' || c == '_')
            && after.trim_start().starts_with('=');
        if !is_key {
            out.push_str("password");
            rest = after;
            continue;
        }
        let eq = after.find('=').expect("checked above");
        out.push_str("password");
        out.push_str(&after[..=eq]);
        let value = after[eq + 1..].trim_start();
        // The value: a quoted string (up to its closing quote), else up to `,` or `}`.
        let end = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].find(q).map_or(value.len(), |i| i + 2),
            _ => value.find([',', '}']).unwrap_or(value.len()),
        };
        out.push_str(" \"********\"");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use crate::config::client::{check, Password, Trust};
    use crate::config::source::TomlFile;

    const NODE: &str =
        "[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"eth0\", mac = \"52:54:00:00:00:01\" }]\n";

    fn client(text: &str) -> Result<crate::config::client::Client, String> {
        let file = TomlFile::from_text(std::path::Path::new("/x/client.toml"), text.into());
        check(&file).map_err(|d| d.to_string())
    }

    #[test]
    fn passwords_are_masked_in_quoted_lines() {
        assert_eq!(
            super::masked(r#"bmc = { url = "https://x", password = "hun,ter2", password-env = "P" }"#),
            r#"bmc = { url = "https://x", password = "********", password-env = "P" }"#
        );
        assert_eq!(super::masked("password='x'"), "password= \"********\"");
        assert_eq!(super::masked("no secret here"), "no secret here");
    }

    #[test]
    fn a_node_takes_the_clients_defaults_and_its_own_url() {
        let text = format!(
            "[client]\nname = \"c\"\n[bmc]\nusername = \"admin\"\npassword-env = \"PW\"\ninsecure = true\n\
             {NODE}bmc = {{ url = \"https://10.1.0.21/\", system = \"1\" }}\n"
        );
        let c = client(&text).unwrap();
        let bmc = c.nodes[0].bmc.as_ref().unwrap();
        assert_eq!(bmc.url, "https://10.1.0.21");
        assert_eq!((bmc.username.as_str(), bmc.system.as_deref()), ("admin", Some("1")));
        assert_eq!(bmc.password, Password::Env("PW".into()));
        assert_eq!(bmc.trust, Trust::Insecure);
        // Without a url anywhere, a node has no BMC.
        let none = client(&format!("[client]\nname = \"c\"\n[bmc]\nusername = \"admin\"\n{NODE}")).unwrap();
        assert!(none.nodes[0].bmc.is_none());
    }

    #[test]
    fn bad_bmcs_are_named_at_their_place_and_no_password_is_shown() {
        let cases = [
            ("bmc = { url = \"ftp://x\", username = \"a\", password-env = \"P\" }", "client.toml:6:15", "is not an https:// URL"),
            ("bmc = { url = \"https://x\", password-env = \"P\" }", "node n1: its bmc has no username", ""),
            ("bmc = { url = \"https://x\", username = \"a\" }", "node n1: its bmc has no password source", "password-env"),
            (
                "bmc = { url = \"https://x\", username = \"a\", password = \"hunter2\" }",
                "a BMC password written in client.toml",
                "password-env = \"ACME_BMC_PASSWORD\"",
            ),
            (
                "bmc = { url = \"https://x\", username = \"a\", password-env = \"P\", password-file = \"f\" }",
                "both password-env and password-file",
                "",
            ),
            (
                "bmc = { url = \"https://x\", username = \"a\", password-env = \"P\", ca = \"none.pem\", insecure = true }",
                "both a ca and insecure",
                "",
            ),
            ("bmc = { url = \"https://x\", username = \"a\", password-env = \"P\", ca = \"none.pem\" }", "/x/none.pem does not exist", ""),
        ];
        for (bmc, want, also) in cases {
            let err = client(&format!("[client]\nname = \"c\"\n{NODE}{bmc}\n")).unwrap_err();
            assert!(
                err.contains(want) && err.contains(also),
                "{bmc}: wanted `{want}` and `{also}` in:\n{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
