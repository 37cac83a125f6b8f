//! Redfish (DMTF), the API every current BMC speaks, as much of it as delivering an image
//! takes — the steps Ironic's `sushy` takes for virtual-media boot: find the node's
//! System, find a virtual drive that takes a CD (under the System, or under its Manager
//! as older BMCs have it), eject what it holds, insert an image by URL, set a one-time
//! boot override (keeping the UEFI or Legacy mode the System reports), and power on or
//! restart; afterwards eject and clear the override. [`http`] is the connection,
//! [`model`] the resources.

mod http;
mod model;

use serde_json::json;

use crate::config::client::Bmc;
use http::Http;
use model::{Collection, Manager, ServiceRoot, System, VirtualMedia};

/// What the node boots from once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootTarget {
    /// The virtual CD.
    Cd,
    /// The network, by PXE.
    Pxe,
    /// The network, by UEFI HTTP boot of this URL.
    UefiHttp(String),
}

impl BootTarget {
    fn redfish(&self) -> &'static str {
        match self {
            BootTarget::Cd => "Cd",
            BootTarget::Pxe => "Pxe",
            BootTarget::UefiHttp(_) => "UefiHttp",
        }
    }
}

/// A node's BMC, its System found.
pub struct Session {
    http: Http,
    root: ServiceRoot,
    system: System,
}

impl Session {
    /// Reads the service root and finds the System (`system`, or the only one).
    pub fn open(bmc: &Bmc) -> Result<Session, String> {
        let http = Http::open(bmc)?;
        let (root, _): (ServiceRoot, _) = http.get("/redfish/v1/")?;
        let Some(systems) = &root.systems else {
            return Err("the BMC's Redfish service lists no Systems".to_string());
        };
        let (collection, _): (Collection, _) = http.get(&systems.id)?;
        let wanted = bmc.system.as_deref();
        let link = match wanted {
            Some(id) => collection
                .members
                .iter()
                .find(|m| m.id.trim_end_matches('/').rsplit('/').next() == Some(id))
                .ok_or_else(|| {
                    format!("the BMC has no system `{id}` (it has: {}): fix system in its bmc table", ids(&collection))
                })?,
            None => match collection.members.as_slice() {
                [one] => one,
                [] => return Err("the BMC lists no systems".to_string()),
                _ => {
                    return Err(format!(
                        "the BMC has several systems ({}): say which is the node's with system = \"…\" in its bmc table",
                        ids(&collection)
                    ))
                }
            },
        };
        let (system, _) = http.get::<System>(&link.id)?;
        Ok(Session { http, root, system })
    }

    /// The System's id and its boot mode, as the BMC reports them.
    pub fn describe(&self) -> String {
        let mode = self.system.boot.boot_source_override_mode.as_deref().unwrap_or("mode not reported");
        format!(
            "system {} ({mode}, power {})",
            self.system.id,
            self.system.power_state.as_deref().unwrap_or("?")
        )
    }

    pub fn uefi(&self) -> bool {
        self.system.boot.boot_source_override_mode.as_deref() == Some("UEFI")
    }

    /// The first virtual drive that takes a CD: the System's, else its Managers'.
    pub fn cd_drive(&self) -> Result<VirtualMedia, String> {
        let mut collections = Vec::new();
        if let Some(link) = &self.system.virtual_media {
            collections.push(link.id.clone());
        }
        let mut managers = self.system.links.managed_by.clone();
        if managers.is_empty() {
            if let Some(link) = &self.root.managers {
                managers = self.http.get::<Collection>(&link.id)?.0.members;
            }
        }
        for manager in &managers {
            if let Some(link) = self.http.get::<Manager>(&manager.id)?.0.virtual_media {
                collections.push(link.id);
            }
        }
        let mut seen = Vec::new();
        for collection in collections {
            for member in self.http.get::<Collection>(&collection)?.0.members {
                let (media, _) = self.http.get::<VirtualMedia>(&member.id)?;
                if media.takes_cd() {
                    return Ok(media);
                }
                seen.push(format!("{} ({})", member.id, media.media_types.join(", ")));
            }
        }
        Err(if seen.is_empty() {
            "the BMC offers no virtual media (is its virtual media licence or service enabled?)".to_string()
        } else {
            format!("none of the BMC's virtual media takes a CD: {}", seen.join("; "))
        })
    }

    /// Ejects what `drive` holds, if anything; true when it held something.
    pub fn eject(&self, drive: &VirtualMedia) -> Result<bool, String> {
        let (now, _) = self.http.get::<VirtualMedia>(&drive.odata_id)?;
        if !now.holds_media() {
            return Ok(false);
        }
        match &drive.actions.eject {
            Some(action) => self.http.send("POST", &action.target, Some(&json!({})), None),
            None => self.http.send(
                "PATCH",
                &drive.odata_id,
                Some(&json!({"Image": null, "Inserted": false})),
                None,
            ),
        }
        .map_err(|e| format!("ejecting what {} held: {e}", drive.odata_id))?;
        Ok(true)
    }

    /// Inserts the image at `url` into `drive`, read-only.
    pub fn insert(&self, drive: &VirtualMedia, url: &str) -> Result<(), String> {
        match &drive.actions.insert {
            Some(action) => self.http.send(
                "POST",
                &action.target,
                Some(&json!({"Image": url, "Inserted": true, "WriteProtected": true})),
                None,
            ),
            None => {
                self.http.send("PATCH", &drive.odata_id, Some(&json!({"Image": url, "Inserted": true})), None)
            }
        }
        .map(drop)
        .map_err(|e| format!("the BMC would not insert {url}: {e}"))
    }

    /// Sets the System to boot from `target` once, in the mode it reports; says how.
    pub fn boot_once(&self, target: &BootTarget) -> Result<String, String> {
        let boot = &self.system.boot;
        let name = target.redfish();
        if !boot.targets.is_empty() && !boot.targets.iter().any(|t| t == name) {
            return Err(format!(
                "the BMC offers no {name} boot override (it offers: {})",
                boot.targets.join(", ")
            ));
        }
        let mut body = json!({"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": name});
        if let Some(mode) = &boot.boot_source_override_mode {
            body["BootSourceOverrideMode"] = json!(mode);
        }
        if let BootTarget::UefiHttp(uri) = target {
            body["HttpBootUri"] = json!(uri);
        }
        let (_, etag) = self.http.get::<System>(&self.system.odata_id)?;
        self.http
            .send("PATCH", &self.system.odata_id, Some(&json!({ "Boot": body })), etag.as_deref())
            .map_err(|e| format!("setting the one-time boot from {name}: {e}"))?;
        Ok(format!(
            "{name} once{}",
            boot.boot_source_override_mode.as_deref().map_or(String::new(), |m| format!(" ({m})"))
        ))
    }

    /// Powers the System on, or restarts it when it is on; says which.
    pub fn power(&self) -> Result<&'static str, String> {
        let (now, _) = self.http.get::<System>(&self.system.odata_id)?;
        let on = now.power_state.as_deref() == Some("On");
        let reset = now.actions.reset.or(self.system.actions.reset.clone()).ok_or_else(|| {
            "the BMC's System has no ComputerSystem.Reset action to power it with".to_string()
        })?;
        let wanted: &[&str] =
            if on { &["ForceRestart", "PowerCycle", "GracefulRestart"] } else { &["On", "ForceOn"] };
        let kind = wanted
            .iter()
            .find(|w| reset.reset_types.is_empty() || reset.reset_types.iter().any(|t| t == *w))
            .ok_or_else(|| {
                format!(
                    "the BMC allows none of {} (it allows: {})",
                    wanted.join(", "),
                    reset.reset_types.join(", ")
                )
            })?;
        self.http
            .send("POST", &reset.target, Some(&json!({ "ResetType": kind })), None)
            .map_err(|e| format!("{kind}: {e}"))?;
        Ok(if on { "restarted" } else { "powered on" })
    }

    /// Clears the boot override, so the node boots as before from now on: `Disabled`,
    /// or where a BMC wants a target with it (sushy-tools does), `Disabled` and `None`.
    pub fn clear_override(&self) -> Result<(), String> {
        let patch = |boot: serde_json::Value| {
            let (_, etag) = self.http.get::<System>(&self.system.odata_id)?;
            self.http
                .send("PATCH", &self.system.odata_id, Some(&json!({ "Boot": boot })), etag.as_deref())
                .map(drop)
        };
        patch(json!({"BootSourceOverrideEnabled": "Disabled"}))
            .or_else(|first| {
                patch(json!({"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None"}))
                    .map_err(|_| first)
            })
            .map_err(|e| format!("clearing the boot override: {e}"))
    }
}

fn ids(collection: &Collection) -> String {
    collection.members.iter().map(|m| m.id.rsplit('/').next().unwrap_or(&m.id)).collect::<Vec<_>>().join(", ")
}

/// The requests delivering would make to `bmc`, for `--dry-run`: placeholders where a
/// path is only known from the BMC's answers; the password masked.
pub fn dry_run(bmc: &Bmc, image: Option<&str>, target: &BootTarget) -> Vec<String> {
    let base = &bmc.url;
    let system = bmc.system.as_deref().map_or("{the only system}".to_string(), str::to_string);
    let mut lines = vec![
        format!(
            "Authorization: Basic {}:******** (the password from {})",
            bmc.username,
            match &bmc.password {
                crate::config::client::Password::Env(v) => format!("${v}"),
                crate::config::client::Password::File(p) => p.display().to_string(),
            }
        ),
        format!("GET   {base}/redfish/v1/"),
        format!("GET   {base}/redfish/v1/Systems"),
        format!("GET   {base}/redfish/v1/Systems/{system}"),
    ];
    if let Some(url) = image {
        lines.extend([
            format!("GET   {base}{{System or Manager}}/VirtualMedia    (the first that takes CD or DVD)"),
            format!(
                "POST  {base}{{VirtualMedia}}/Actions/VirtualMedia.EjectMedia {{}}    (when it holds media)"
            ),
            format!(
                "POST  {base}{{VirtualMedia}}/Actions/VirtualMedia.InsertMedia {}",
                json!({"Image": url, "Inserted": true, "WriteProtected": true})
            ),
        ]);
    }
    let mut boot = json!({"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": target.redfish(),
                          "BootSourceOverrideMode": "{as the System reports}"});
    if let BootTarget::UefiHttp(uri) = target {
        boot["HttpBootUri"] = json!(uri);
    }
    lines.extend([
        format!("PATCH {base}/redfish/v1/Systems/{system} {}", json!({ "Boot": boot })),
        format!(
            "POST  {base}/redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset {}    (ForceRestart when it is on)",
            json!({"ResetType": "On"})
        ),
    ]);
    lines
}
