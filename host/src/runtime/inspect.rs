//! What a fixer is, read from its bytes before it ever runs: its manifest and its imports.
//!
//! The import check is the link-time layer of least privilege: a fixer may import the common
//! interfaces, its own resource type's capability interface, and the WASI interfaces Rust's `std`
//! pulls in (linked with an empty context). Anything else is refused, naming the interface.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasmparser::{Parser, Payload};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::kinds::{self, CapabilityFunction, ContractVersion, KindSpec};

/// The custom section `salve_sdk::register_fixer!` writes.
pub const MANIFEST_SECTION: &str = "salve-fixer-manifest";

/// WASI interfaces a fixer may import. They are linked to an empty context: no preopened
/// directories, no environment, no sockets.
const ALLOWED_WASI_PREFIXES: &[&str] = &[
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixerManifest {
    pub name: String,
    pub version: String,
    pub resource_type: String,
    pub controls: Vec<String>,
}

/// Reads the manifest custom section from a component (it lives in the fixer's core module).
pub fn read_manifest(bytes: &[u8]) -> Result<FixerManifest> {
    let mut sections = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.context("the file is not a valid WebAssembly component")?;
        if let Payload::CustomSection(reader) = payload {
            if reader.name() == MANIFEST_SECTION {
                sections.push(reader.data().to_vec());
            }
        }
    }
    let text = match sections.as_slice() {
        [] => bail!(
            "the component has no {MANIFEST_SECTION} section; register the fixer with salve_sdk::register_fixer!"
        ),
        [one] => String::from_utf8(one.clone()).context("the fixer manifest is not UTF-8")?,
        _ => bail!("the component has {} {MANIFEST_SECTION} sections; it must have one", sections.len()),
    };
    parse_manifest(&text)
}

fn parse_manifest(text: &str) -> Result<FixerManifest> {
    let (mut name, mut version, mut resource_type) = (None, None, None);
    let mut controls = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            bail!("fixer manifest line {line:?} is not key=value");
        };
        let value = value.trim().to_string();
        match key.trim() {
            "name" => name = Some(value),
            "version" => version = Some(value),
            "resource-type" => resource_type = Some(value),
            "control" => controls.push(value),
            other => bail!("fixer manifest has unknown key {other:?}"),
        }
    }
    Ok(FixerManifest {
        name: name.context("fixer manifest has no name")?,
        version: version.context("fixer manifest has no version")?,
        resource_type: resource_type.context("fixer manifest has no resource-type")?,
        controls,
    })
}

/// The imports of a fixer that passed the link-time check.
#[derive(Debug, Clone)]
pub struct Imports {
    pub interfaces: Vec<String>,
    /// The capability functions it imports, hence every IAM action it could ever ask for.
    pub functions: Vec<&'static CapabilityFunction>,
}

/// The link-time check: refuses any import outside `resource_type`'s world.
pub fn check_imports(
    engine: &Engine,
    component: &Component,
    resource_type: &KindSpec,
    version: ContractVersion,
) -> Result<Imports> {
    let own = version.capability_interface(resource_type);
    let common = version.common_interfaces();
    let mut interfaces = Vec::new();
    let mut functions = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        interfaces.push(name.to_string());
        if common.iter().any(|c| c == name)
            || ALLOWED_WASI_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            continue;
        }
        if name != own {
            bail!(
                "fixer imports {name}, which is outside the {} world of {}; a fixer may only use the capability interface of its own resource type",
                resource_type.world,
                resource_type.name
            );
        }
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            bail!("fixer imports {name} as something other than an interface");
        };
        for (function, export) in instance.exports(engine) {
            // Records and variants show up as exported types; only functions are capabilities.
            if !matches!(export.ty, ComponentItem::ComponentFunc(_)) {
                continue;
            }
            let known =
                kinds::functions_of(resource_type.interface).find(|f| f.function == function);
            let Some(known) = known else {
                bail!("fixer imports {name}#{function}, which this host does not implement");
            };
            functions.push(known);
        }
    }
    Ok(Imports {
        interfaces,
        functions,
    })
}

/// The contract version a component was built against, from the `fixer` interface it exports.
pub fn contract_version(
    engine: &Engine,
    component: &Component,
    kind: &KindSpec,
) -> Result<ContractVersion> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let versions: Vec<ContractVersion> = kind.contracts().collect();
    versions
        .iter()
        .rev()
        .copied()
        .find(|v| exports.iter().any(|e| *e == v.fixer_export(kind)))
        .with_context(|| {
            format!(
                "the component exports {}, and none of them is a salve fixer interface for {} ({})",
                if exports.is_empty() {
                    "nothing".to_string()
                } else {
                    exports.join(", ")
                },
                kind.name,
                versions
                    .iter()
                    .map(|v| v.fixer_export(kind))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
}

/// One capability function a fixer imports, as `salve fixer inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedAction {
    pub interface: &'static str,
    pub function: &'static str,
    pub iam_action: &'static str,
    #[serde(serialize_with = "crate::capabilities::serialize_access")]
    pub access: kinds::Access,
}

/// What `salve fixer inspect` prints: everything a reviewer needs before installing a fixer.
#[derive(Debug, Clone, Serialize)]
pub struct FixerReport {
    pub sha256: String,
    /// SHA-256 of the artifact this host compiles it to (what a cache entry for it holds).
    pub artifact_sha256: Option<String>,
    pub name: String,
    pub version: String,
    pub resource_type: String,
    /// The WIT world the fixer is checked against; `None` for a resource type with no world.
    /// The contract version the fixer was built against, from its exports.
    pub contract: Option<&'static str>,
    pub world: Option<&'static str>,
    pub controls: Vec<String>,
    /// Every import, WASI included.
    pub imports: Vec<String>,
    /// The salve capability interfaces among the imports.
    pub capability_interfaces: Vec<String>,
    /// The capability functions it imports, with their IAM actions.
    pub actions: Vec<ImportedAction>,
    /// Whether the link-time least-privilege check passes for its resource type.
    pub least_privilege_check: LinkCheck,
    /// Claims it shares with installed fixers (`--installed`): a second fixer with its name, or
    /// one claiming the same control for the same resource type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overlaps: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkCheck {
    pub passed: bool,
    pub detail: String,
}

/// Every import of `component`, and the salve capability functions among them, whether or not
/// they fit the fixer's world: a refused fixer is reported in full, not just refused.
pub fn list_imports(engine: &Engine, component: &Component) -> (Vec<String>, Vec<ImportedAction>) {
    let mut names = Vec::new();
    let mut found = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        names.push(name.to_string());
        let Some(interface) = kinds::specs()
            .find(|t| {
                ContractVersion::ALL
                    .iter()
                    .any(|v| v.capability_interface(t) == name)
            })
            .map(|t| t.interface)
        else {
            continue;
        };
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        for (function, export) in instance.exports(engine) {
            if !matches!(export.ty, ComponentItem::ComponentFunc(_)) {
                continue;
            }
            if let Some(f) = kinds::functions_of(interface).find(|f| f.function == function) {
                found.push(ImportedAction {
                    interface: f.interface,
                    function: f.function,
                    iam_action: f.iam_action,
                    access: f.access,
                });
            }
        }
    }
    (names, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sdk_manifest_format() {
        let m =
            parse_manifest("name=x\nversion=0.1.0\nresource-type=AWS::S3::Bucket\ncontrol=S3.8\n")
                .unwrap();
        assert_eq!(m.controls, vec!["S3.8"]);
        assert_eq!(m.resource_type, "AWS::S3::Bucket");
    }

    #[test]
    fn rejects_unknown_keys_and_missing_fields() {
        assert_eq!(
            parse_manifest("name=x\nworld=y").unwrap_err().to_string(),
            "fixer manifest has unknown key \"world\""
        );
        assert_eq!(
            parse_manifest("name=x\nversion=1").unwrap_err().to_string(),
            "fixer manifest has no resource-type"
        );
    }

    #[test]
    fn a_core_module_is_not_a_fixer() {
        let err = read_manifest(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(
            err.to_string().contains("no salve-fixer-manifest section"),
            "{err}"
        );
    }
}
