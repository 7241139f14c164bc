//! democli against a real Tally server on loopback: delivery, failures,
//! crashes, privacy and consent, as users of a CLI would meet them.

mod consent;
mod delivery;
mod forget;
mod outcomes;
mod support;
