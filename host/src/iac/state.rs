//! Terraform state, format version 4 (Terraform 0.12 and later): which address holds a resource.
//!
//! Only what tracing a finding needs is read: each managed resource's module, type, name, and
//! the instances' index keys and attributes. Anything else in the file is ignored.

use serde::Deserialize;
use serde_json::Value;

/// The one state format version salve reads.
pub const STATE_VERSION: u64 = 4;

#[derive(Debug, Deserialize)]
pub struct State {
    pub version: u64,
    #[serde(default)]
    pub terraform_version: Option<String>,
    #[serde(default)]
    pub resources: Vec<StateResource>,
}

#[derive(Debug, Deserialize)]
pub struct StateResource {
    /// `module.network` or `module.a["x"].module.b`; absent in the root module.
    #[serde(default)]
    pub module: Option<String>,
    /// `managed` or `data`.
    pub mode: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    #[serde(default)]
    pub instances: Vec<Instance>,
}

#[derive(Debug, Deserialize)]
pub struct Instance {
    /// The `count` index or the `for_each` key; absent for a single instance.
    #[serde(default)]
    pub index_key: Option<IndexKey>,
    #[serde(default)]
    pub attributes: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum IndexKey {
    Count(i64),
    Key(String),
}

impl Instance {
    /// The value of the first of `id_attributes` the instance sets (a kind's
    /// `Terraform::id_attributes`: bucket name, group ID, …).
    pub fn id<'a>(&'a self, id_attributes: &[&str]) -> Option<&'a str> {
        id_attributes
            .iter()
            .find_map(|a| self.attributes.get(*a).and_then(Value::as_str))
    }
}

impl std::fmt::Display for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexKey::Count(n) => write!(f, "[{n}]"),
            IndexKey::Key(k) => write!(f, "[{}]", serde_json::Value::from(k.as_str())),
        }
    }
}

/// A resource instance's Terraform address, split into what locating its code needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Address {
    /// The module calls from the root module, outermost first (`["network"]`), as the state
    /// spells them, index keys included (`a["x"]`).
    pub module: Vec<String>,
    pub resource_type: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexKey>,
}

impl Address {
    /// The module call names without their index keys: the path of `module` blocks to follow.
    pub fn module_calls(&self) -> Vec<&str> {
        self.module
            .iter()
            .map(|m| m.split('[').next().unwrap_or(m))
            .collect()
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for m in &self.module {
            write!(f, "module.{m}.")?;
        }
        write!(f, "{}.{}", self.resource_type, self.name)?;
        if let Some(i) = &self.index {
            write!(f, "{i}")?;
        }
        Ok(())
    }
}

/// Why a state file cannot be used. Each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state is not Terraform state JSON ({0}); check the workspace's state location")]
    Corrupt(String),
    #[error("the state has format version {0}, newer than the version {STATE_VERSION} salve reads; upgrade salve")]
    Newer(u64),
    #[error("the state has format version {0}, older than version {STATE_VERSION} (Terraform 0.12); run terraform init and apply with a current Terraform")]
    Older(u64),
}

/// Parses a state file, checking its format version before anything else.
pub fn parse(bytes: &[u8]) -> Result<State, StateError> {
    #[derive(Deserialize)]
    struct Version {
        version: u64,
    }
    let v: Version =
        serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt(e.to_string()))?;
    match v.version {
        STATE_VERSION => {}
        n if n > STATE_VERSION => return Err(StateError::Newer(n)),
        n => return Err(StateError::Older(n)),
    }
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt(e.to_string()))
}

/// The module path of `module.a["x"].module.b`: `["a[\"x\"]", "b"]`.
fn module_path(module: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = module;
    while let Some(r) = rest.strip_prefix("module.") {
        // The next call ends at the next `.module.` outside an index key.
        let mut depth = 0usize;
        let mut end = r.len();
        for (i, c) in r.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '.' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        out.push(r[..end].to_string());
        rest = r.get(end + 1..).unwrap_or("");
    }
    out
}

impl State {
    /// Every managed instance of `resource_type`, with its address.
    pub fn instances_of<'a>(
        &'a self,
        resource_type: &'a str,
    ) -> impl Iterator<Item = (Address, &'a Instance)> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.mode == "managed" && r.resource_type == resource_type)
            .flat_map(|r| {
                r.instances.iter().map(move |i| {
                    (
                        Address {
                            module: r.module.as_deref().map(module_path).unwrap_or_default(),
                            resource_type: r.resource_type.clone(),
                            name: r.name.clone(),
                            index: i.index_key.clone(),
                        },
                        i,
                    )
                })
            })
    }

    /// Every managed instance of `resource_type` whose `attributes` name the resource (`name`,
    /// the bucket or ID, or its `arn`; or `region`, for a setting the provider names by it).
    pub fn find(
        &self,
        resource_type: &str,
        attributes: &[&str],
        name: &str,
        arn: &str,
        region: Option<&str>,
    ) -> Vec<Address> {
        let names = |i: &Instance| {
            attributes.iter().any(|a| {
                i.attributes
                    .get(*a)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v == name || v == arn || Some(v) == region)
            })
        };
        self.resources
            .iter()
            .filter(|r| r.mode == "managed" && r.resource_type == resource_type)
            .flat_map(|r| {
                r.instances.iter().filter(|i| names(i)).map(|i| Address {
                    module: r.module.as_deref().map(module_path).unwrap_or_default(),
                    resource_type: r.resource_type.clone(),
                    name: r.name.clone(),
                    index: i.index_key.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_other_than_4_are_refused_with_what_to_do() {
        assert_eq!(
            parse(br#"{"version": 5}"#).unwrap_err(),
            StateError::Newer(5)
        );
        assert_eq!(
            parse(br#"{"version": 3}"#).unwrap_err(),
            StateError::Older(3)
        );
        assert!(matches!(
            parse(b"{not json").unwrap_err(),
            StateError::Corrupt(_)
        ));
        assert!(matches!(
            parse(br#"{"version": 4, "resources": 7}"#).unwrap_err(),
            StateError::Corrupt(_)
        ));
    }

    #[test]
    fn addresses_keep_modules_and_index_keys() {
        let state = parse(
            br#"{"version": 4, "resources": [
              {"module": "module.a[\"x.y\"].module.b", "mode": "managed", "type": "aws_security_group", "name": "web",
               "instances": [{"index_key": "blue", "attributes": {"id": "sg-1"}},
                             {"index_key": "green", "attributes": {"id": "sg-2"}}]},
              {"mode": "data", "type": "aws_security_group", "name": "looked_up",
               "instances": [{"attributes": {"id": "sg-2"}}]}]}"#,
        )
        .unwrap();
        let found = state.find("aws_security_group", &["id", "arn"], "sg-2", "arn:x", None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            r#"module.a["x.y"].module.b.aws_security_group.web["green"]"#
        );
        assert_eq!(found[0].module_calls(), ["a", "b"]);
    }
}
