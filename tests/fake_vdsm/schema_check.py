"""VDSM's schema rules (lib/vdsm/api/vdsmapi.py, strict mode) as these tests check
them, written for the tests: a value agrees with a schema type field by field and
type by type.

A type is a primitive name (``string``, ``int``, ``boolean``, ...), a one-element
list (a list of that type), or a type entry of vdsm-api.yml (anchors resolved):
``alias`` (its ``sourcetype``), ``object`` (its ``properties``: no unknown key;
a property without ``defaultvalue`` is required and not null), ``enum``, ``map``.
A method's ``params`` follow the same rule as an object's properties.

One deliberate difference: VDSM's ``int`` accepts a bool (Python's bool is an
int); here it does not, so a wrong answer cannot pass by accident."""

PRIMITIVES = {
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "uint": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "long": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "ulong": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
    "float": lambda v: isinstance(v, float),
    "string": lambda v: isinstance(v, str),
}


class SchemaMismatch(Exception):
    pass


def check(spec, value, where="value"):
    """Raise SchemaMismatch naming the first place where value disagrees with spec."""
    if isinstance(spec, list):
        if len(spec) != 1:
            raise SchemaMismatch(f"{where}: a list type has one element type, not {spec!r}")
        if not isinstance(value, list):
            raise SchemaMismatch(f"{where}: {value!r} is not a list")
        for i, item in enumerate(value):
            check(spec[0], item, f"{where}[{i}]")
        return
    if isinstance(spec, str):
        if spec not in PRIMITIVES:
            raise SchemaMismatch(f"{where}: unknown type {spec!r}")
        if not PRIMITIVES[spec](value):
            raise SchemaMismatch(f"{where}: {value!r} is not {spec}")
        return
    if not isinstance(spec, dict):
        raise SchemaMismatch(f"{where}: bad type entry {spec!r}")
    kind = spec.get("type")
    if kind == "alias":
        check(spec["sourcetype"], value, f"{where} ({spec.get('name')})")
    elif kind == "object":
        if not isinstance(value, dict):
            raise SchemaMismatch(f"{where}: {value!r} is not an object ({spec.get('name')})")
        check_fields(spec["properties"], value, where)
    elif kind == "enum":
        if value not in spec["values"]:
            raise SchemaMismatch(f"{where}: {value!r} is not one of {spec['values']}")
    elif kind == "map":
        if not isinstance(value, dict):
            raise SchemaMismatch(f"{where}: {value!r} is not a map")
        for key, item in value.items():
            check(spec["key-type"], key, f"{where} key")
            check(spec["value-type"], item, f"{where}[{key!r}]")
    else:
        raise SchemaMismatch(f"{where}: unsupported type entry kind {kind!r}")


def check_fields(fields, value, where="value"):
    """An object's properties, or a method's params, against a dict of values."""
    names = [f["name"] for f in fields]
    unknown = [k for k in value if k not in names]
    if unknown:
        raise SchemaMismatch(f"{where}: unknown field(s) {unknown}")
    for field in fields:
        item = value.get(field["name"])
        if item is None:
            if "defaultvalue" not in field:
                raise SchemaMismatch(f"{where}.{field['name']}: required, missing or null")
            continue
        check(field["type"], item, f"{where}.{field['name']}")
