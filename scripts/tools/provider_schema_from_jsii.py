#!/usr/bin/env python3
"""A terraform provider's schema, recovered from the jsii assembly of its CDKTF bindings.

The npm packages @cdktf/provider-azurerm and @cdktf/provider-aws are generated from the
providers' own `terraform providers schema -json`, and their `.jsii` file (JSON) keeps
what the plugin protocol's GetProviderSchema needs:

- each resource / data source is a class whose docs link `.../resources/<name> <type>`;
  its `<Class>Config` interface lists the arguments, `optional` marking what is not
  required, each property's docs carrying the terraform name as the registry anchor
  (`...#storage_account_id StorageContainer#storage_account_id`);
- an argument typed as a struct (or a list of structs), whose docs summary reads
  "<name> block.", is a nested block; a single struct is a block of at most one;
- the class's (or a block's `OutputReference` class's) read-only getters that are no
  argument are the computed attributes (`kube_config_raw`, `oidc_issuer_url`, ...), a
  `...List` type being a list of objects described by its `...OutputReference` class.

What the assembly does not carry: which optional arguments are also computed (every
optional one is written as optional + computed, which `terraform validate` treats the
same), list versus set (lists), sensitivity, descriptions.

Usage: provider_schema_from_jsii.py PACKAGE.tgz OUT_DIR
Writes OUT_DIR/<provider>-<version>.json (the version the bindings were generated from):
{"provider": {"name", "version"}, "provider_schema", "resource_schemas",
"data_source_schemas"}, each schema a block:
{"attributes": [{"name", "type", "required", "optional", "computed"}],
 "block_types": [{"type_name", "nesting", "min_items", "max_items", "block"}]},
"type" being the cty type in terraform's JSON type notation.
"""

import json
import os
import re
import sys
import tarfile

ANCHOR = re.compile(r"#([A-Za-z0-9_]+) [A-Za-z0-9_]+#")
TYPE_LINK = re.compile(r"\{@link https://registry\.terraform\.io/providers/[^ ]+ ([a-z0-9_]+)\}")
VERSION = re.compile(r"registry\.terraform\.io/providers/hashicorp/[a-z0-9]+/([0-9.]+)/docs")

BOOL_UNION = [{"primitive": "boolean"}, {"fqn": "cdktf.IResolvable"}]
CDKTF_TYPES = {
    "cdktf.IResolvable": "bool",
    "cdktf.StringMap": ["map", "string"],
    "cdktf.NumberMap": ["map", "number"],
    "cdktf.BooleanMap": ["map", "bool"],
    "cdktf.AnyMap": ["map", "dynamic"],
    "cdktf.StringMapList": ["list", ["map", "string"]],
    "cdktf.NumberMapList": ["list", ["map", "number"]],
    "cdktf.BooleanMapList": ["list", ["map", "bool"]],
    "cdktf.AnyMapList": ["list", ["map", "dynamic"]],
}


def snake(camel):
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def tf_name(prop):
    docs = prop.get("docs", {})
    for text in (docs.get("summary", ""), docs.get("remarks", "")):
        m = ANCHOR.search(text)
        if m:
            return m.group(1)
    return snake(prop["name"])


class Converter:
    def __init__(self, types):
        self.types = types

    def primitive_type(self, ty):
        """The cty type of a non-block jsii type, or None for a struct (a block)."""
        if "primitive" in ty:
            return {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic"}[
                ty["primitive"]
            ]
        if "union" in ty:
            members = ty["union"]["types"]
            if all(m in BOOL_UNION for m in members):
                return "bool"
            rest = [m for m in members if m != {"fqn": "cdktf.IResolvable"}]
            return self.primitive_type(rest[0]) if len(rest) == 1 else "dynamic"
        if "collection" in ty:
            elem = self.primitive_type(ty["collection"]["elementtype"])
            if elem is None:
                return None
            kind = {"array": "list", "map": "map"}[ty["collection"]["kind"]]
            return [kind, elem]
        fqn = ty["fqn"]
        if fqn in CDKTF_TYPES:
            return CDKTF_TYPES[fqn]
        return None

    def struct_of(self, ty):
        """(struct fqn, is_list) of a block-typed argument, else None."""
        if "fqn" in ty and ty["fqn"] in self.types:
            return ty["fqn"], False
        if "collection" in ty and ty["collection"]["kind"] == "array":
            inner = self.struct_of(ty["collection"]["elementtype"])
            return (inner[0], True) if inner else None
        if "union" in ty:
            for m in ty["union"]["types"]:
                if m != {"fqn": "cdktf.IResolvable"}:
                    inner = self.struct_of(m)
                    if inner:
                        return inner
        return None

    def computed_type(self, ty):
        """The cty type of a read-only getter (a computed attribute)."""
        prim = self.primitive_type(ty)
        if prim is not None:
            return prim
        fqn = ty.get("fqn", "")
        for suffix in ("List", "OutputReference"):
            if fqn.endswith(suffix):
                ref = fqn[: -len(suffix)] + "OutputReference"
                if ref in self.types:
                    return ["list", ["object", self.object_attributes(ref)]]
        if fqn.endswith("Map") and fqn[:-3] + "OutputReference" in self.types:
            return ["map", ["object", self.object_attributes(fqn[:-3] + "OutputReference")]]
        return "dynamic"

    def object_attributes(self, ref_fqn):
        attrs = {}
        for prop in self.getters(ref_fqn):
            attrs[snake(prop["name"])] = self.computed_type(prop["type"])
        return attrs

    def getters(self, class_fqn):
        """The attribute getters of a generated class: public, not static, not the
        `...Input` twins, not the ComplexObject plumbing."""
        for prop in self.types[class_fqn].get("properties", []):
            if prop.get("static") or prop.get("protected"):
                continue
            name = prop["name"]
            if name.endswith("Input") or name in ("internalValue", "fqn", "terraformResourceType"):
                continue
            yield prop

    def block(self, struct_fqn, output_fqn, skip=(), optional_computed=True):
        """A schema block from a config struct (arguments) and the class whose getters
        add the computed attributes."""
        attributes, block_types, seen = [], [], set()
        struct = self.types.get(struct_fqn, {})
        for prop in struct.get("properties", []):
            name = tf_name(prop)
            if name in skip:
                continue
            seen.add(prop["name"])
            optional = bool(prop.get("optional"))
            nested = self.struct_of(prop["type"])
            summary = prop.get("docs", {}).get("summary", "")
            if nested and (summary.endswith(" block.") or self.primitive_type(prop["type"]) is None):
                nested_fqn, is_list = nested
                single = name == "timeouts"
                block_types.append(
                    {
                        "type_name": name,
                        "nesting": "single" if single else "list",
                        "min_items": 0 if optional or single else 1,
                        "max_items": 0 if is_list or single else 1,
                        "block": self.block(
                            nested_fqn, nested_fqn + "OutputReference", optional_computed=optional_computed
                        ),
                    }
                )
                continue
            ty = self.primitive_type(prop["type"])
            attributes.append(
                {
                    "name": name,
                    "type": ty if ty is not None else "dynamic",
                    "required": not optional,
                    "optional": optional,
                    "computed": optional and optional_computed,
                }
            )
        if output_fqn in self.types:
            for prop in self.getters(output_fqn):
                if prop["name"] in seen or not prop.get("immutable"):
                    continue
                fqn = prop["type"].get("fqn", "")
                # A block's getter (its OutputReference) when the block is an argument.
                if fqn.endswith("OutputReference") and prop["name"] in seen:
                    continue
                attributes.append(
                    {
                        "name": snake(prop["name"]),
                        "type": self.computed_type(prop["type"]),
                        "required": False,
                        "optional": False,
                        "computed": True,
                    }
                )
        attributes.sort(key=lambda a: a["name"])
        block_types.sort(key=lambda b: b["type_name"])
        return {"attributes": attributes, "block_types": block_types}


def convert(assembly):
    types = assembly["types"]
    conv = Converter(types)
    out = {"resource_schemas": {}, "data_source_schemas": {}}
    for fqn, ty in types.items():
        base = ty.get("base")
        if base not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource", "cdktf.TerraformProvider"):
            continue
        summary = ty.get("docs", {}).get("summary", "")
        m = TYPE_LINK.search(summary)
        if not m:
            raise SystemExit(f"{fqn}: no terraform type name in {summary!r}")
        provider = base == "cdktf.TerraformProvider"
        block = conv.block(fqn + "Config", fqn, skip=("alias",) if provider else (), optional_computed=not provider)
        if base == "cdktf.TerraformProvider":
            version = VERSION.search(summary)
            out["provider"] = {"name": m.group(1), "version": version.group(1) if version else ""}
            out["provider_schema"] = block
        elif base == "cdktf.TerraformResource":
            out["resource_schemas"][m.group(1)] = block
        else:
            out["data_source_schemas"][m.group(1)] = block
    return out


def main():
    package, out_dir = sys.argv[1], sys.argv[2]
    with tarfile.open(package) as tar:
        assembly = json.load(tar.extractfile("package/.jsii"))
    schema = convert(assembly)
    target = os.path.join(out_dir, f"{schema['provider']['name']}-{schema['provider']['version']}.json")
    with open(target + ".tmp", "w") as f:
        json.dump(schema, f, separators=(",", ":"), sort_keys=True)
    os.replace(target + ".tmp", target)
    print(
        f"{target}: {schema['provider']['name']} {schema['provider']['version']}, "
        f"{len(schema['resource_schemas'])} resources, {len(schema['data_source_schemas'])} data sources"
    )


if __name__ == "__main__":
    main()
