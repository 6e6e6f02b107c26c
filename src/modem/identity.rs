//! Who a modem is: manufacturer, model, firmware, IMEI, IMSI, ICCID, own
//! number. Read at init by the engine and by `smsgate modem probe`.

use serde::{Deserialize, Serialize};

use crate::at::command::{Cgmi, Cgmm, Cgmr, Cgsn, Cimi, Cnum, IccidCommand};
use crate::at::AtLink;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub imei: Option<String>,
    pub imsi: Option<String>,
    pub iccid: Option<String>,
    /// From `AT+CNUM`, when the SIM stores it.
    pub own_number: Option<String>,
}

/// Which ICCID command to try first, from the manufacturer string (vendor
/// quirk: there is no 27.007 command for it); the others follow.
fn iccid_order(manufacturer: Option<&str>) -> [IccidCommand; 4] {
    let m = manufacturer.unwrap_or("").to_ascii_lowercase();
    if m.contains("quectel") {
        [
            IccidCommand::Qccid,
            IccidCommand::Iccid,
            IccidCommand::Ccid,
            IccidCommand::Huawei,
        ]
    } else if m.contains("huawei") {
        [
            IccidCommand::Huawei,
            IccidCommand::Iccid,
            IccidCommand::Ccid,
            IccidCommand::Qccid,
        ]
    } else if m.contains("simcom") || m.contains("sim com") {
        [
            IccidCommand::Ccid,
            IccidCommand::Iccid,
            IccidCommand::Qccid,
            IccidCommand::Huawei,
        ]
    } else {
        [
            IccidCommand::Iccid,
            IccidCommand::Ccid,
            IccidCommand::Qccid,
            IccidCommand::Huawei,
        ]
    }
}

/// Read what the modem will tell; a field it refuses stays `None`.
pub async fn read_identity(client: &mut impl AtLink) -> Identity {
    let manufacturer = client.send(&Cgmi).await.ok();
    let mut iccid = None;
    for cmd in iccid_order(manufacturer.as_deref()) {
        if let Ok(value) = client.send(&cmd).await {
            iccid = Some(value);
            break;
        }
    }
    Identity {
        model: client.send(&Cgmm).await.ok(),
        firmware: client.send(&Cgmr).await.ok(),
        imei: client.send(&Cgsn).await.ok(),
        imsi: client.send(&Cimi).await.ok(),
        iccid,
        own_number: client
            .send(&Cnum)
            .await
            .ok()
            .and_then(|numbers| numbers.first().map(|n| n.e164())),
        manufacturer,
    }
}
