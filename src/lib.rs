//! emag-sync
