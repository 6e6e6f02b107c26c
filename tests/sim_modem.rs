//! The simulator over its pty, spoken to the way clients do: tokio-serial on the
//! slave side, raw AT bytes, every wait bounded.

use std::path::PathBuf;
use std::time::Duration;

use smsgate::pdu::{self, hex, Address, Body, SubmitOptions, Tpdu};
use smsgate::sim::{Fault, HandsetScript, Personality, SimConfig, SimHandle, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, Instant};
use tokio_serial::SerialStream;

const WAIT: Duration = Duration::from_secs(10);

fn link(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smsgate-sim-{}-{name}", std::process::id()))
}

fn config(p: Personality, name: &str) -> SimConfig {
    let mut c = SimConfig::new(p);
    c.link = Some(link(name));
    c.status_report_delay = Duration::from_millis(50);
    // Periodic noise only where a test asks for it.
    c.noise_interval = Some(Duration::ZERO);
    c
}

/// A client on the slave side, with the bytes read but not yet consumed.
struct Client {
    port: SerialStream,
    pending: Vec<u8>,
}

impl Client {
    async fn open(sim: &SimHandle) -> Client {
        let path = sim.link().to_string_lossy().into_owned();
        let port = SerialStream::open(&tokio_serial::new(path, 115200)).unwrap();
        Client {
            port,
            pending: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        AsyncWriteExt::write_all(&mut self.port, bytes)
            .await
            .unwrap();
    }

    /// Read until `done` finds the end of what we wait for in the pending bytes;
    /// return and consume them up to there.
    async fn read_until(&mut self, done: impl Fn(&str) -> Option<usize>) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if let Some(end) = done(&text) {
                let consumed = text[..end].len();
                // The lossy text and the bytes agree up to `end` for ASCII replies.
                self.pending.drain(..consumed.min(self.pending.len()));
                return text[..end].to_string();
            }
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout_at(deadline, AsyncReadExt::read(&mut self.port, &mut buf))
                .await
                .unwrap_or_else(|_| panic!("timed out; so far: {text:?}"))
                .unwrap();
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    async fn expect(&mut self, needle: &str) -> String {
        let needle = needle.to_string();
        self.read_until(move |t| t.find(&needle).map(|i| i + needle.len()))
            .await
    }

    /// Send a line, return everything up to and including its final result.
    async fn command(&mut self, line: &str) -> String {
        self.write(format!("{line}\r").as_bytes()).await;
        self.read_until(final_result).await
    }

    /// A fresh modem: echo off, numeric errors, PDU mode.
    async fn init(&mut self) {
        let reply = self.command("ATE0").await;
        assert!(reply.ends_with("\r\nOK\r\n"), "{reply:?}");
        let reply = self.command("AT+CMEE=1;+CMGF=0").await;
        assert!(reply.ends_with("\r\nOK\r\n"), "{reply:?}");
    }

    async fn send_sms(&mut self, to: &str, text: &str, srr: bool) -> Vec<String> {
        let options = SubmitOptions {
            status_report: srr,
            reference: 42,
            ..SubmitOptions::default()
        };
        let message =
            pdu::encode_submit(&Address::parse_number(to).unwrap(), text, &options).unwrap();
        let mut replies = Vec::new();
        for part in &message.parts {
            assert_eq!(
                self.command(&format!("AT+CMGS={}", part.tpdu_length)).await,
                "\r\n> "
            );
            self.write(format!("{}\x1a", hex::encode(&part.pdu)).as_bytes())
                .await;
            replies.push(self.read_until(final_result).await);
        }
        replies
    }
}

/// End of a final result code (or of the `> ` prompt) in `text`.
fn final_result(text: &str) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut consider = |end: Option<usize>| {
        if let Some(e) = end {
            best = Some(best.map_or(e, |b| b.min(e)));
        }
    };
    for fixed in [
        "\r\nOK\r\n",
        "\r\nERROR\r\n",
        "\r\nCOMMAND NOT SUPPORT\r\n",
        "\r\n> ",
    ] {
        consider(text.find(fixed).map(|i| i + fixed.len()));
    }
    for prefix in ["\r\n+CMS ERROR: ", "\r\n+CME ERROR: "] {
        consider(text.find(prefix).and_then(|i| {
            text[i + prefix.len()..]
                .find("\r\n")
                .map(|j| i + prefix.len() + j + 2)
        }));
    }
    best
}

fn deliver_text(pdu_hex: &str) -> (String, String, Option<pdu::Concat>) {
    match pdu::decode_hex(pdu_hex, true).unwrap().tpdu {
        Tpdu::Deliver(d) => {
            let concat = d.user_data.header.as_ref().and_then(|h| h.concat());
            match d.user_data.body {
                Body::Text(t) => (d.originator.value, t, concat),
                Body::Data(_) => panic!("data"),
            }
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn python_gsmmodem_init_sequence_gets_sensible_answers() {
    let sim = Simulator::start(config(Personality::Sim800, "init")).unwrap();
    let mut c = Client::open(&sim).await;
    // Echo is on at boot, as on a real modem.
    assert_eq!(c.command("ATZ").await, "ATZ\r\r\nOK\r\n");
    let script: &[(&str, &str)] = &[
        ("ATE0", "OK"),
        ("AT+CFUN?", "+CFUN: 1"),
        ("AT+CMEE=1", "OK"),
        ("AT+CPIN?", "+CPIN: READY"),
        ("AT+CGMI", "SIMCOM_Ltd"),
        ("AT+CGMM", "SIMCOM_SIM800L"),
        ("AT+CGMR", "Revision"),
        ("AT+CGSN", "869012045678901"),
        ("AT+CLAC", "AT+CMGS"),
        ("AT+WIND?", "ERROR"),
        ("AT+ZPAS?", "ERROR"),
        ("AT+COPS=3,0", "OK"),
        ("AT+CMGF=0", "OK"),
        ("AT+CSCA?", "+CSCA: \"+15550000000\",145"),
        ("AT+CSMP=49,167,0,0", "OK"),
        ("AT+CSMP?", "+CSMP: 49,167,0,0"),
        ("AT+CPMS=?", "+CPMS: (\"SM\"),(\"SM\"),(\"SM\")"),
        ("AT+CPMS=\"SM\",\"SM\",\"SM\"", "+CPMS: 0,30,0,30,0,30"),
        ("AT+CNMI=2,1,0,2", "OK"),
        ("AT+CLIP=1", "OK"),
        ("AT+CRC=1", "OK"),
        ("AT+CVHU=0", "OK"),
        ("AT+CSQ", "+CSQ: 21,99"),
        ("AT+CREG?", "+CREG: 0,1"),
        ("AT+CGREG?", "+CGREG: 0,1"),
        ("AT+CIMI", "001010123456789"),
        ("AT+CCID", "89001012012345678901"),
        ("AT+CNUM", "OK"),
        ("AT+CGATT?", "+CGATT: 1"),
        ("AT+CSCS=?", "\"UCS2\""),
        ("AT+CSMS?", "+CSMS: 0,1,1,1"),
        ("AT+CMGL=?", "+CMGL: (0-4)"),
        ("AT+CUSD=?", "+CUSD: (0-2)"),
    ];
    for (line, expected) in script {
        let reply = c.command(line).await;
        assert!(reply.contains(expected), "{line}: {reply:?}");
        if !expected.contains("ERROR") {
            assert!(reply.ends_with("\r\nOK\r\n"), "{line}: {reply:?}");
        }
    }
    sim.shutdown().await;
    assert!(
        !link("init").exists(),
        "the symlink goes with the simulator"
    );
}

#[tokio::test]
async fn multipart_emoji_sms_reaches_the_network_with_its_parts() {
    let sim = Simulator::start(config(Personality::Ec25, "send")).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    let text = "Your appointment is confirmed 🙂 Reply C to confirm, R to reschedule. \
                See you soon at the shop 🦷, bring your card please!";
    let replies = c.send_sms("+15550100", text, false).await;
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0], "\r\n+CMGS: 1\r\n\r\nOK\r\n");
    assert_eq!(replies[1], "\r\n+CMGS: 2\r\n\r\nOK\r\n");
    let received = sim.wait_received(1, WAIT).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, "+15550100");
    assert_eq!(received[0].text, text);
    assert_eq!(received[0].parts, 2);
    assert!(!received[0].status_report_requested);
    sim.shutdown().await;
}

#[tokio::test]
async fn wire_bytes_count_every_byte_both_ways() {
    let sim = Simulator::start(config(Personality::Sim800, "wire")).unwrap();
    assert_eq!(sim.wire_bytes(), (0, 0));
    let mut c = Client::open(&sim).await;
    // Echo is on at boot: "ATE0\r" comes back before its OK.
    let reply = c.command("ATE0").await;
    assert_eq!(reply, "ATE0\r\r\nOK\r\n");
    assert_eq!(sim.wire_bytes(), (5, reply.len() as u64));
    let (rx0, tx0) = sim.wire_bytes();
    let text = "x".repeat(160);
    let message = pdu::encode_submit(
        &Address::parse_number("+15550100").unwrap(),
        &text,
        &SubmitOptions::default(),
    )
    .unwrap();
    assert_eq!(message.parts.len(), 1);
    let part = &message.parts[0];
    let command = format!("AT+CMGS={}\r", part.tpdu_length);
    let body = format!("{}\x1a", hex::encode(&part.pdu));
    let replies = c.send_sms("+15550100", &text, false).await;
    assert_eq!(replies.len(), 1);
    let (rx, tx) = sim.wire_bytes();
    assert_eq!(rx - rx0, (command.len() + body.len()) as u64);
    assert_eq!(tx - tx0, ("\r\n> ".len() + replies[0].len()) as u64);
    sim.shutdown().await;
}

fn report_status(pdu_hex: &str) -> (u8, u8) {
    match pdu::decode_hex(pdu_hex, true).unwrap().tpdu {
        Tpdu::StatusReport(r) => (r.message_reference, r.status.0),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn status_report_arrives_as_cdsi_on_ec25() {
    let mut cfg = config(Personality::Ec25, "cdsi");
    cfg.failing_numbers = vec!["+15550199".into()];
    let sim = Simulator::start(cfg).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    assert_eq!(c.command("AT+CNMI=2,1,0,2,0").await, "\r\nOK\r\n");
    assert_eq!(
        c.send_sms("+15550199", "hi", true).await[0],
        "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    );
    c.expect("\r\n+CDSI: \"SR\",0\r\n").await;
    let reply = c.command("AT+CPMS=\"SR\";+CMGR=0").await;
    let pdu_line = reply.lines().nth(4).unwrap();
    let (mr, status) = report_status(pdu_line);
    assert_eq!(mr, 1);
    assert!(status >= 0x40, "failing number: {status:#x}");
    sim.shutdown().await;
}

#[tokio::test]
async fn status_report_arrives_as_cds_when_ds_is_1() {
    let sim = Simulator::start(config(Personality::Sim800, "cds")).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    assert_eq!(c.command("AT+CNMI=2,1,0,1,0").await, "\r\nOK\r\n");
    c.send_sms("+15550100", "hi", true).await;
    c.expect("\r\n+CDS: ").await;
    let urc = c.expect("\r\n").await;
    let len: usize = urc.trim().parse().unwrap();
    let pdu_line = c.expect("\r\n").await;
    let octets = hex::decode(pdu_line.trim()).unwrap();
    assert_eq!(octets.len(), 1 + len);
    assert_eq!(report_status(pdu_line.trim()), (1, 0x00));
    let received = sim.wait_received(1, WAIT).await.unwrap();
    assert!(received[0].status_report_requested);
    sim.shutdown().await;
}

#[tokio::test]
async fn inbound_multipart_is_announced_read_listed_and_deleted() {
    let sim = Simulator::start(config(Personality::Sim800, "inbound")).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    let text = "Ünïcødé reply 📅 ".repeat(6);
    assert_eq!(sim.inject("+15550123", &text).unwrap(), 2);
    c.expect("\r\n+CMTI: \"SM\",1\r\n").await;
    c.expect("\r\n+CMTI: \"SM\",2\r\n").await;
    let reply = c.command("AT+CMGR=1").await;
    let lines: Vec<&str> = reply.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("+CMGR: 0,,"), "{reply:?}");
    let (from, first, concat) = deliver_text(lines[1]);
    assert_eq!(from, "+15550123");
    let concat = concat.unwrap();
    assert_eq!((concat.total, concat.sequence), (2, 1));
    let list = c.command("AT+CMGL=4").await;
    let lines: Vec<&str> = list.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 5, "{list:?}");
    assert!(lines[0].starts_with("+CMGL: 1,1,,"));
    assert!(lines[2].starts_with("+CMGL: 2,0,,"));
    let (_, second, _) = deliver_text(lines[3]);
    assert_eq!(format!("{first}{second}"), text);
    assert_eq!(
        c.command("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",2,30,\"SM\",2,30,\"SM\",2,30\r\n\r\nOK\r\n"
    );
    assert_eq!(c.command("AT+CMGD=1;+CMGD=0,4").await, "\r\nOK\r\n");
    assert_eq!(c.command("AT+CMGL=4").await, "\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn full_storage_holds_inbound_in_the_network_until_freed() {
    let sim = Simulator::start(config(Personality::Sim800, "full")).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    for i in 0..31 {
        sim.inject("+15550123", &format!("message {i}")).unwrap();
    }
    c.expect("\r\n+CMTI: \"SM\",30\r\n").await;
    assert_eq!(
        c.command("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",30,30,\"SM\",30,30,\"SM\",30,30\r\n\r\nOK\r\n"
    );
    assert_eq!(sim.waiting_inbound(), 1);
    assert_eq!(c.command("AT+CMGD=7").await, "\r\nOK\r\n");
    c.expect("\r\n+CMTI: \"SM\",7\r\n").await;
    let reply = c.command("AT+CMGR=7").await;
    let pdu_line = reply
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .nth(1)
        .unwrap();
    assert_eq!(deliver_text(pdu_line).1, "message 30");
    // The fault: writes refused with 322, inbound waits until it ends.
    sim.fault(Fault::StorageFull { duration: None }).unwrap();
    assert_eq!(c.command("AT+CMGD=1").await, "\r\nOK\r\n");
    sim.inject("+15550123", "after the fault").unwrap();
    let draft = pdu::encode_submit(
        &Address::parse_number("+15550100").unwrap(),
        "draft",
        &SubmitOptions::default(),
    )
    .unwrap();
    let part = &draft.parts[0];
    assert_eq!(
        c.command(&format!("AT+CMGW={}", part.tpdu_length)).await,
        "\r\n> "
    );
    c.write(format!("{}\x1a", hex::encode(&part.pdu)).as_bytes())
        .await;
    assert_eq!(c.read_until(final_result).await, "\r\n+CMS ERROR: 322\r\n");
    assert_eq!(sim.waiting_inbound(), 1);
    sim.fault(Fault::Clear).unwrap();
    c.expect("\r\n+CMTI: \"SM\",1\r\n").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn pin_lock_and_wrong_pins() {
    let mut cfg = config(Personality::Sim800, "pin");
    cfg.pin = Some("1234".into());
    let sim = Simulator::start(cfg).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    assert_eq!(
        c.command("AT+CPIN?").await,
        "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    );
    assert_eq!(c.command("AT+CMGL=4").await, "\r\n+CMS ERROR: 311\r\n");
    assert_eq!(
        c.command("AT+CPIN=\"1111\"").await,
        "\r\n+CME ERROR: 16\r\n"
    );
    assert_eq!(c.command("AT+CPIN=\"1234\"").await, "\r\nOK\r\n");
    c.expect("\r\nSMS Ready\r\n").await;
    assert_eq!(
        c.command("AT+CPIN?").await,
        "\r\n+CPIN: READY\r\n\r\nOK\r\n"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn cms_error_fault_fails_the_next_two_sends() {
    let sim = Simulator::start(config(Personality::Ec25, "cms")).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    sim.fault(Fault::CmsError {
        code: 331,
        count: 2,
    })
    .unwrap();
    // Orders are handled before the bytes written after them.
    assert_eq!(
        c.send_sms("+15550100", "a", false).await[0],
        "\r\n+CMS ERROR: 331\r\n"
    );
    assert_eq!(
        c.send_sms("+15550100", "b", false).await[0],
        "\r\n+CMS ERROR: 331\r\n"
    );
    assert_eq!(
        c.send_sms("+15550100", "c", false).await[0],
        "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    );
    assert_eq!(sim.wait_received(1, WAIT).await.unwrap()[0].text, "c");
    sim.shutdown().await;
}

#[tokio::test]
async fn unplug_closes_the_port_and_it_comes_back_at_the_same_link() {
    let sim = Simulator::start(config(Personality::Sim800, "unplug")).unwrap();
    let first_slave = sim.slave_path();
    let mut c = Client::open(&sim).await;
    c.init().await;
    sim.fault(Fault::Unplug {
        duration: Duration::from_millis(200),
    })
    .unwrap();
    // The old port reports the device gone (EIO or end of file).
    let mut buf = [0u8; 64];
    let gone = timeout(WAIT, async {
        loop {
            match AsyncReadExt::read(&mut c.port, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(gone.is_ok(), "the old port should fail once unplugged");
    sim.wait_generation(2, WAIT).await.unwrap();
    assert_ne!(sim.slave_path(), first_slave);
    assert_eq!(
        std::fs::read_link(link("unplug")).unwrap(),
        sim.slave_path()
    );
    let mut c = Client::open(&sim).await;
    // Freshly booted: the boot URCs, then echo is on again.
    c.expect("SMS Ready\r\n").await;
    assert_eq!(c.command("AT").await, "AT\r\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn reboot_prints_boot_urcs_and_forgets_volatile_settings() {
    let sim = Simulator::start(config(Personality::Ec25, "reboot")).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    assert_eq!(c.command("AT+CNMI=2,2,0,1,0").await, "\r\nOK\r\n");
    sim.fault(Fault::Reboot).unwrap();
    c.expect("+QIND: PB DONE\r\n").await;
    assert_eq!(
        c.command("AT+CMGF?;+CNMI?").await,
        "AT+CMGF?;+CNMI?\r\r\n+CMGF: 0\r\n\r\n+CNMI: 2,1,0,0,0\r\n\r\nOK\r\n"
    );
    assert_eq!(c.command("AT+CFUN=1,1").await, "AT+CFUN=1,1\r\r\nOK\r\n");
    c.expect("\r\nRDY\r\n").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn e3372_noise_between_commands_and_command_not_support() {
    let mut cfg = config(Personality::E3372, "e3372");
    cfg.noise_interval = Some(Duration::from_millis(20));
    let sim = Simulator::start(cfg).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    c.expect("\r\n^BOOT:").await;
    assert!(c
        .command("AT+WIND?")
        .await
        .ends_with("\r\nCOMMAND NOT SUPPORT\r\n"));
    assert!(c
        .command("AT^ICCID?")
        .await
        .contains("^ICCID: 89001012012345678901"));
    // Noise stays out of responses: between "+CSQ" and "OK" there is nothing.
    for _ in 0..20 {
        let reply = c.command("AT+CSQ").await;
        let info = reply.find("+CSQ: 21,99\r\n").unwrap();
        assert_eq!(&reply[info..], "+CSQ: 21,99\r\n\r\nOK\r\n", "{reply:?}");
    }
    // AT^CURC=0 silences it (Huawei).
    assert!(c.command("AT^CURC=0").await.ends_with("\r\nOK\r\n"));
    sim.shutdown().await;
}

#[tokio::test]
async fn noise_inside_responses_when_the_option_is_on() {
    let mut cfg = config(Personality::E3372, "noisy");
    cfg.noise_in_responses = true;
    let sim = Simulator::start(cfg).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    let reply = c.command("AT+CSQ").await;
    assert!(
        reply.ends_with("+CSQ: 21,99\r\n\r\n^RSSI: 21\r\n\r\nOK\r\n"),
        "{reply:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn scripted_handset_replies() {
    let mut cfg = config(Personality::Sim800, "handset");
    cfg.handsets = vec![HandsetScript {
        number: "+15550100".into(),
        reply: "C".into(),
        delay: Duration::from_millis(50),
        ..Default::default()
    }];
    let sim = Simulator::start(cfg).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    c.send_sms("+15550100", "Reply C to confirm", false).await;
    c.expect("\r\n+CMTI: \"SM\",1\r\n").await;
    assert_eq!(
        stored_text(&mut c, 1).await,
        ("+15550100".into(), "C".into())
    );
    sim.shutdown().await;
}

async fn stored_text(c: &mut Client, index: u32) -> (String, String) {
    let reply = c.command(&format!("AT+CMGR={index}")).await;
    let pdu_line = reply
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .nth(1)
        .unwrap();
    let (from, text, _) = deliver_text(pdu_line);
    (from, text)
}

#[tokio::test]
async fn a_handset_walks_through_its_answers_then_stays_quiet() {
    let mut cfg = config(Personality::Sim800, "handset_then");
    cfg.handsets = vec![
        HandsetScript {
            number: "+15550100".into(),
            reply: "R".into(),
            then: vec!["2".into()],
            once: false,
            delay: Duration::from_millis(20),
        },
        HandsetScript {
            number: "+15550300".into(),
            reply: "hi".into(),
            once: true,
            delay: Duration::from_millis(20),
            ..Default::default()
        },
        // Answers later than the others would: its text arriving last shows
        // that they stayed quiet after their scripts.
        HandsetScript {
            number: "+15550200".into(),
            reply: "ok".into(),
            delay: Duration::from_millis(300),
            ..Default::default()
        },
    ];
    let sim = Simulator::start(cfg).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    c.send_sms("+15550100", "Reply C to confirm, R to reschedule", false)
        .await;
    c.expect("\r\n+CMTI: \"SM\",1\r\n").await;
    c.send_sms("+15550100", "Pick 1 or 2", false).await;
    c.expect("\r\n+CMTI: \"SM\",2\r\n").await;
    c.send_sms("+15550300", "First", false).await;
    c.expect("\r\n+CMTI: \"SM\",3\r\n").await;
    c.send_sms("+15550100", "Booked", false).await;
    c.send_sms("+15550300", "Second", false).await;
    c.send_sms("+15550200", "Hello", false).await;
    c.expect("\r\n+CMTI: \"SM\",4\r\n").await;
    let expected = [
        ("+15550100", "R"),
        ("+15550100", "2"),
        ("+15550300", "hi"),
        ("+15550200", "ok"),
    ];
    for (index, (from, text)) in (1..).zip(expected) {
        assert_eq!(stored_text(&mut c, index).await, (from.into(), text.into()));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_paces_replies_to_the_baud_rate() {
    // 2400 baud: 240 bytes/s. AT+CLAC's reply is about 450 bytes: ~2 s on the
    // wire, against milliseconds unthrottled.
    let mut cfg = config(Personality::Sim800, "baud");
    cfg.baud = Some(2400);
    let sim = Simulator::start(cfg).unwrap();
    let mut c = Client::open(&sim).await;
    c.write(b"ATE0\r").await;
    c.read_until(final_result).await;
    let start = Instant::now();
    let reply = c.command("AT+CLAC").await;
    let elapsed = start.elapsed();
    let wire = Duration::from_secs_f64((reply.len() + 7) as f64 / 240.0);
    assert!(
        elapsed >= wire.mul_f64(0.8),
        "{} bytes in {elapsed:?}, the wire needs {wire:?}",
        reply.len()
    );
    assert!(
        elapsed < wire * 3 + Duration::from_secs(1),
        "{elapsed:?} vs {wire:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_simulators_run_in_one_process() {
    let mut sims = Vec::new();
    for i in 0..32 {
        let p = Personality::ALL[i % 3];
        sims.push(Simulator::start(config(p, &format!("fleet{i}"))).unwrap());
    }
    for sim in &sims {
        let mut c = Client::open(sim).await;
        assert!(c
            .command("AT+CSQ")
            .await
            .ends_with("+CSQ: 21,99\r\n\r\nOK\r\n"));
    }
    for sim in &sims {
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn stop_answering_swallows_commands_and_garbage_arrives() {
    let sim = Simulator::start(config(Personality::Sim800, "hung")).unwrap();
    let mut c = Client::open(&sim).await;
    c.init().await;
    sim.fault(Fault::Garbage { count: 40 }).unwrap();
    let mut noise = Vec::new();
    timeout(WAIT, async {
        while noise.len() < 40 {
            let mut buf = [0u8; 64];
            let n = AsyncReadExt::read(&mut c.port, &mut buf).await.unwrap();
            noise.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap();
    assert_eq!(noise.len(), 40);

    sim.fault(Fault::StopAnswering { duration: None }).unwrap();
    // Orders are handled before the bytes written after them.
    c.write(b"AT+CSQ\r").await;
    // Proving silence needs a wait: a short, bounded one.
    let mut buf = [0u8; 64];
    let silent = timeout(
        Duration::from_millis(300),
        AsyncReadExt::read(&mut c.port, &mut buf),
    )
    .await;
    assert!(silent.is_err(), "a hung modem answers nothing");
    sim.fault(Fault::Clear).unwrap();
    let reply = c.command("AT").await;
    assert!(reply.ends_with("\r\nOK\r\n"));
    sim.shutdown().await;
}
