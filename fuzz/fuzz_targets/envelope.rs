//! The receiver's parsing of a request body: `Envelope::parse`, then the judgement of each
//! event (`Event::parse_checked`, which runs `parse_valid`, the field grammar and the
//! storability scan). Nothing may panic, and what is admitted must be usable downstream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regstat_shared::event::{Envelope, Event, MAX_ID_BYTES, check_storable};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data) {
        for raw in &envelope.events {
            judge(raw.get().as_bytes());
        }
    }
    // The body itself as one event, too: reaches the event parser with arbitrary bytes.
    judge(data);
});

fn judge(raw: &[u8]) {
    let _ = check_storable(raw);
    match Event::parse_checked(raw) {
        Ok(event) => {
            // An admitted event can be keyed, routed and used as an AMQP message id...
            let id = event.id.as_deref().expect("admitted events have an id");
            assert!(!id.is_empty() && id.len() <= MAX_ID_BYTES, "id {id:?}");
            assert!(event.action.is_some() && event.target.is_some());
            let _ = event.routing_key();
            // ...and round-trips through JSON to itself.
            let json = serde_json::to_vec(&event).expect("events serialise");
            assert_eq!(Event::parse(&json).as_ref(), Ok(&event));
            assert!(Event::parse_valid(raw).is_ok(), "checked implies valid");
        }
        Err(invalid) => {
            // Reasons travel in an AMQP header and log lines: always short.
            let reason = invalid.to_string();
            assert!(reason.len() <= 1024, "{} bytes: {reason}", reason.len());
        }
    }
}
