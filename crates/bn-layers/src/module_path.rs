//! Where a [`ModuleMapper`](burn::module::ModuleMapper) is inside a model: the fields it has
//! entered and the structs holding them, which is how a mapper finds every BatchNorm's
//! parameters, flags and running statistics in a model it knows nothing about.

/// The fields entered and not yet left, each with the struct holding it, as Burn reports
/// them to `enter_module` (`("running", "Struct:BatchNorm")`).
#[derive(Default)]
pub(crate) struct ModulePath(Vec<(String, String)>);

impl ModulePath {
    /// `enter_module(name, container_type)`.
    pub(crate) fn enter(&mut self, name: &str, container_type: &str) {
        self.0.push((name.to_string(), container_type.to_string()));
    }

    /// `exit_module`.
    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }

    /// The field being mapped, if a `holder` struct holds it directly (`gamma` of a
    /// `BatchNorm`).
    pub(crate) fn field_of(&self, holder: &str) -> Option<&str> {
        match self.0.as_slice() {
            [.., (field, ty)] if is_struct(ty, holder) => Some(field),
            _ => None,
        }
    }

    /// The field being mapped, if it sits in the `submodule` field of a `holder` struct
    /// (`mean` of the `running` statistics of a `BatchNorm`).
    pub(crate) fn field_of_submodule(&self, holder: &str, submodule: &str) -> Option<&str> {
        match self.0.as_slice() {
            [.., (sub, ty), (field, _)] if sub == submodule && is_struct(ty, holder) => Some(field),
            _ => None,
        }
    }
}

fn is_struct(container_type: &str, name: &str) -> bool {
    container_type.strip_prefix("Struct:") == Some(name)
}
