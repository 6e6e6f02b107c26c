//! PDU codec throughput: decode and encode of a full concatenated part in GSM
//! 7-bit (153 septets) and UCS-2 (67 UTF-16 units), on one core.
//!
//! Run: `cargo bench --bench pdu` (add `-- --quick` for a short run). Target
//! (issue: PDU codec): at least 1,000,000 decodes per second on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use smsgate::pdu::{self, Address, SubmitOptions};

/// Run `f` repeatedly for about `budget` and return operations per second.
fn measure(name: &str, budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up caches and the branch predictor.
    for _ in 0..10_000 {
        f();
    }
    let mut iterations: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1_000 {
            f();
        }
        iterations += 1_000;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate = iterations as f64 / elapsed;
    println!(
        "{name:<34} {:>12.0} ops/s {:>9.1} ns/op",
        rate,
        1e9 * elapsed / iterations as f64
    );
    rate
}

/// The first part of a message long enough to need two: 153 septets or 67 units.
fn first_part(text: &str) -> Vec<u8> {
    let to = Address::parse_number("+15551234567").expect("number");
    let options = SubmitOptions::default();
    let message = pdu::encode_submit(&to, text, &options).expect("encode");
    assert!(message.parts.len() >= 2, "a full first part");
    message.parts[0].pdu.clone()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 200 } else { 2_000 });
    let gsm_text =
        "Reply C to confirm your appointment on Tuesday at 10:30, R to reschedule. ".repeat(3);
    let ucs2_text =
        "Подтвердите запись на вторник 10:30 ответом C 😀 или R для переноса. ".repeat(2);
    let gsm = first_part(&gsm_text);
    let ucs2 = first_part(&ucs2_text);
    let to = Address::parse_number("+15551234567").expect("number");
    let options = SubmitOptions::default();
    let gsm_153: String = gsm_text.chars().take(153).collect();
    let ucs2_67: String = ucs2_text.chars().take(66).collect();

    println!(
        "PDU codec, one thread ({} budget per case)",
        if quick { "0.2 s" } else { "2 s" }
    );
    let decode_gsm = measure("decode gsm7 153 septets + UDH", budget, || {
        black_box(pdu::decode(black_box(&gsm), true).ok());
    });
    let decode_ucs2 = measure("decode ucs2 67 units + UDH", budget, || {
        black_box(pdu::decode(black_box(&ucs2), true).ok());
    });
    measure("encode gsm7 153 septets", budget, || {
        black_box(pdu::encode_submit(&to, black_box(&gsm_153), &options).ok());
    });
    measure("encode ucs2 66 units + emoji", budget, || {
        black_box(pdu::encode_submit(&to, black_box(&ucs2_67), &options).ok());
    });
    measure("segment+encode 2-part gsm7", budget, || {
        black_box(pdu::encode_submit(&to, black_box(&gsm_text), &options).ok());
    });
    let slowest = decode_gsm.min(decode_ucs2);
    println!(
        "slowest decode: {slowest:.0}/s ({}: target 1,000,000/s)",
        if slowest >= 1e6 { "met" } else { "NOT met" }
    );
}
