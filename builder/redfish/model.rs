//! The few Redfish resources deliver reads, as small typed views: only the fields used,
//! every one optional or defaulted, so vendors' extra fields and omissions pass.

use serde::Deserialize;

/// A link: `{"@odata.id": "/redfish/v1/Systems/1"}`.
#[derive(Deserialize, Debug, Clone)]
pub struct Link {
    #[serde(rename = "@odata.id")]
    pub id: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRoot {
    pub systems: Option<Link>,
    pub managers: Option<Link>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Collection {
    #[serde(default)]
    pub members: Vec<Link>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct System {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
    #[serde(default)]
    pub id: String,
    pub power_state: Option<String>,
    #[serde(default)]
    pub boot: Boot,
    /// Newer BMCs keep virtual media under the System.
    pub virtual_media: Option<Link>,
    #[serde(default)]
    pub links: SystemLinks,
    #[serde(default)]
    pub actions: SystemActions,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Boot {
    /// `UEFI` or `Legacy`, where the BMC says.
    pub boot_source_override_mode: Option<String>,
    #[serde(rename = "BootSourceOverrideTarget@Redfish.AllowableValues", default)]
    pub targets: Vec<String>,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct SystemLinks {
    #[serde(default)]
    pub managed_by: Vec<Link>,
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct SystemActions {
    #[serde(rename = "#ComputerSystem.Reset")]
    pub reset: Option<Action>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Action {
    pub target: String,
    #[serde(rename = "ResetType@Redfish.AllowableValues", default)]
    pub reset_types: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Manager {
    pub virtual_media: Option<Link>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualMedia {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
    #[serde(default)]
    pub media_types: Vec<String>,
    pub inserted: Option<bool>,
    pub image: Option<String>,
    #[serde(default)]
    pub actions: MediaActions,
}

impl VirtualMedia {
    /// Whether it takes a CD or DVD image.
    pub fn takes_cd(&self) -> bool {
        self.media_types.iter().any(|t| t == "CD" || t == "DVD")
    }

    pub fn holds_media(&self) -> bool {
        self.inserted.unwrap_or(false) || self.image.as_deref().is_some_and(|i| !i.is_empty())
    }
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct MediaActions {
    #[serde(rename = "#VirtualMedia.InsertMedia")]
    pub insert: Option<Action>,
    #[serde(rename = "#VirtualMedia.EjectMedia")]
    pub eject: Option<Action>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_fields_pass_and_missing_ones_default() {
        let system: System = serde_json::from_str(
            r##"{"@odata.id": "/redfish/v1/Systems/1", "Id": "1", "PowerState": "Off",
                "Oem": {"Hpe": {"x": 1}},
                "Boot": {"BootSourceOverrideMode": "UEFI",
                         "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "UefiHttp"]},
                "Actions": {"#ComputerSystem.Reset": {"target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                            "ResetType@Redfish.AllowableValues": ["On", "ForceRestart"]}}}"##,
        )
        .unwrap();
        assert_eq!(system.boot.boot_source_override_mode.as_deref(), Some("UEFI"));
        assert_eq!(system.boot.targets, ["Pxe", "Cd", "UefiHttp"]);
        assert!(system.virtual_media.is_none() && system.links.managed_by.is_empty());
        assert_eq!(system.actions.reset.unwrap().reset_types, ["On", "ForceRestart"]);
        let media: VirtualMedia = serde_json::from_str(
            r#"{"@odata.id": "/redfish/v1/Managers/1/VirtualMedia/Cd", "MediaTypes": ["CD", "DVD"], "Image": ""}"#,
        )
        .unwrap();
        assert!(media.takes_cd() && !media.holds_media() && media.actions.insert.is_none());
    }
}
