//! The scrape's merge orders, kept between scrapes next to the store (the
//! store owns one, the scrape reads and refreshes it): a leaf over the
//! stored families, so that the store never imports the scrape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::stored::StoredFamily;

/// The scrape order of merged families, kept from one scrape to the next:
/// a write replaces a stored family and never changes one, so while a
/// family's sources are the same stored families its order is the same.
/// Holds no metric data: weak references to the sources (a pointer is not
/// reused while one exists) and 8 bytes per series.
#[derive(Default)]
pub struct MergeCache {
    pub(super) families: Mutex<HashMap<String, CachedOrder>>,
}

pub(super) struct CachedOrder {
    pub(super) sources: Vec<Weak<StoredFamily>>,
    pub(super) order: Arc<[(u32, u32)]>,
}
