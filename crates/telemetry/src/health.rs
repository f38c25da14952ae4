//! Readiness of the plugin's components: each says whether it is ready and,
//! if not, why; `/readyz` (in [`crate::http`]) and Probe read the result.
//!
//! Plain data behind a lock, without I/O, so that a component can report
//! from anywhere without knowing how readiness is served.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Readiness of the plugin's components, shared between them and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<&'static str, Result<(), String>>>>,
}

impl Health {
    /// A health with no components: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `component` is ready.
    pub fn ready(&self, component: &'static str) {
        self.set(component, Ok(()));
    }

    /// Records that `component` is not ready, and why.
    pub fn not_ready(&self, component: &'static str, why: impl Into<String>) {
        self.set(component, Err(why.into()));
    }

    fn set(&self, component: &'static str, state: Result<(), String>) {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // map itself is always whole, so keep using it.
        let mut components = self
            .components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        components.insert(component, state);
    }

    /// `Ok` when every component is ready, else each one that is not, with
    /// its reason.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let components = self
            .components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let problems: Vec<String> = components
            .iter()
            .filter_map(|(name, state)| state.as_ref().err().map(|why| format!("{name}: {why}")))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ready_only_when_every_component_is() {
        let h = Health::new();
        assert_eq!(h.check(), Ok(()));
        h.not_ready("rds", "no answer from 10.0.0.1:22");
        h.ready("node");
        assert_eq!(
            h.check(),
            Err(vec!["rds: no answer from 10.0.0.1:22".to_owned()])
        );
        h.ready("rds");
        assert_eq!(h.check(), Ok(()));
    }
}
