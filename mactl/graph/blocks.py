"""The config's `moved` and `removed` blocks, checked against the stages and applied to addresses.

`check` runs when the graph is expanded (so `mactl validate` reports a bad block as one
line naming it); `StateBlocks` is what the planner asks: where a recorded address lives
now (`move`), and whether a stage that left the config is to be forgotten (`forgets`).
Moves apply in the order they are written, so `a → b` then `b → c` chains; a cycle, a
`from` still in the config, a `to` not in it, or two blocks moving the same thing are
refused. Nothing here reads the state or writes anything.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from mactl.config.issues import ConfigIssue
from mactl.graph import address as addr
from mactl.schema.blocks import ImportBlock, MovedBlock, RemovedBlock

# The stage types that can adopt what exists (their provider has `adopt`).
IMPORTABLE = ("snapshot", "metadata")


@dataclass(frozen=True)
class StateBlocks:
    moved: tuple[MovedBlock, ...] = ()
    removed: tuple[RemovedBlock, ...] = ()
    imports: tuple[ImportBlock, ...] = ()

    def import_ids(self) -> dict[str, str | None]:
        """address → the id to import it from (None: what the stage's own inputs name)."""
        return {block.to: block.id for block in self.imports}

    def move(self, address: str) -> str:
        """Where a recorded `address` lives after every moved block (itself when none applies)."""
        current = address
        for block in self.moved:
            if block.kind is None:
                if current == block.from_:
                    current = block.to
                elif addr.split_instance(current)[0] == block.from_:
                    current = block.to + addr.split_instance(current)[1]
            else:
                renamed = addr.rename(current, block.kind, block.from_, block.to)
                if renamed is not None:
                    current = renamed
        return current

    def moves(self, recorded: Iterable[str]) -> dict[str, str]:
        """old address → new address, for the recorded addresses some block moves."""
        out: dict[str, str] = {}
        for address in recorded:
            new = self.move(address)
            if new != address:
                out[address] = new
        return out

    def forgets(self, address: str) -> RemovedBlock | None:
        """The `removed` block that forgets `address` (first match), or None."""
        stage = addr.split_instance(address)[0]
        for block in self.removed:
            pattern = block.from_
            if address == pattern or stage == pattern or ("*" in pattern and fnmatch.fnmatchcase(address, pattern)):
                return None if block.lifecycle.destroy else block
        return None

    def original_name(self, kind: str, name: str) -> str:
        """The first name a `kind` name had, following renames backwards (`snap3` ← `snap2` ← `snap1`)."""
        seen = {name}
        current = name
        changed = True
        while changed:
            changed = False
            for block in self.moved:
                if block.kind == kind and block.to == current and block.from_ not in seen:
                    current = block.from_
                    seen.add(current)
                    changed = True
        return current


def check(blocks: StateBlocks, stages: Mapping[str, object] | Collection[str]) -> list[ConfigIssue]:
    """Every problem with the blocks, one line each, naming the block (`moved[1].to`)."""
    present = set(stages)
    # The names of each kind in the config, for renames only (a pass over every address).
    renames = any(block.kind is not None for block in blocks.moved)
    names = {kind: addr.names_of_kind(present, kind) for kind in addr.NAME_SEGMENTS} if renames else {}
    edges: dict[tuple[str | None, str], tuple[str, int]] = {}
    for i, block in enumerate(blocks.moved):
        edges.setdefault((block.kind, block.from_), (block.to, i))
    issues, in_cycle = _cycles(edges)
    seen_from: dict[tuple[str | None, str], int] = {}
    for i, block in enumerate(blocks.moved):
        where = f"moved[{i}]"
        if i in in_cycle:
            continue
        if block.from_ == block.to:
            issues.append(ConfigIssue(where, f"from and to are both '{block.to}'"))
            continue
        key = (block.kind, block.from_)
        if key in seen_from:
            issues.append(ConfigIssue(where, f"'{block.from_}' is already moved by moved[{seen_from[key]}]"))
            continue
        seen_from[key] = i
        if block.kind is None:
            bad = [(f, v) for f, v in (("from", block.from_), ("to", block.to)) if not addr.is_stage_address(v)]
            if bad:
                f, v = bad[0]
                issues.append(
                    ConfigIssue(
                        f"{where}.{f}",
                        f"'{v}' is not a stage address (<type>.<source>...); to rename a name give "
                        "`kind: snapshot|migration|target|backfill|step`",
                    )
                )
                continue
            if addr.stage_type(block.from_) != addr.stage_type(block.to):
                issues.append(
                    ConfigIssue(
                        where,
                        f"cannot move a {addr.stage_type(block.from_)} stage to a {addr.stage_type(block.to)} stage",
                    )
                )
                continue
            if addr.split_instance(block.from_)[0] in present and not addr.split_instance(block.from_)[1]:
                issues.append(
                    ConfigIssue(
                        f"{where}.from",
                        f"'{block.from_}' is still in the config; `from` is the old address of a stage that was renamed",
                    )
                )
            if addr.split_instance(block.to)[0] not in present:
                issues.append(ConfigIssue(f"{where}.to", f"'{block.to}' is not a stage in the config"))
        else:
            bad_name = [(f, v) for f, v in (("from", block.from_), ("to", block.to)) if "." in v or "[" in v]
            if bad_name:
                f, v = bad_name[0]
                issues.append(ConfigIssue(f"{where}.{f}", f"'{v}' is not a {block.kind} name"))
                continue
            known = names[block.kind]
            if block.from_ in known:
                issues.append(
                    ConfigIssue(
                        f"{where}.from", f"{block.kind} '{block.from_}' is still in the config; `from` is its old name"
                    )
                )
            if block.to not in known:
                issues.append(ConfigIssue(f"{where}.to", f"no {block.kind} named '{block.to}' in the config"))
    imported: dict[str, int] = {}
    for i, adopt in enumerate(blocks.imports):
        where = f"import[{i}].to"
        if adopt.to in imported:
            issues.append(ConfigIssue(where, f"'{adopt.to}' is already imported by import[{imported[adopt.to]}]"))
            continue
        imported[adopt.to] = i
        if adopt.to not in present:
            issues.append(ConfigIssue(where, f"'{adopt.to}' is not a stage in the config"))
        elif addr.stage_type(adopt.to) not in IMPORTABLE:
            issues.append(
                ConfigIssue(
                    where,
                    f"a {addr.stage_type(adopt.to)} stage cannot be imported (importable: {', '.join(IMPORTABLE)})",
                )
            )
    for i, removed in enumerate(blocks.removed):
        where = f"removed[{i}].from"
        pattern = removed.from_
        if not (addr.is_stage_address(pattern) or "*" in pattern):
            issues.append(ConfigIssue(where, f"'{pattern}' is not a stage address or a `*` pattern"))
            continue
        still = sorted(a for a in present if a == pattern or ("*" in pattern and fnmatch.fnmatchcase(a, pattern)))
        if still:
            issues.append(
                ConfigIssue(
                    where,
                    f"'{still[0]}' is still in the config; take it out of the config to forget it, or drop this block",
                )
            )
    return issues


def _cycles(edges: Mapping[tuple[str | None, str], tuple[str, int]]) -> tuple[list[ConfigIssue], set[int]]:
    """One issue per cycle the moved blocks make (`a → b → a`), naming the first block in it,
    and the indexes of the blocks in a cycle (not checked one by one: the cycle says it all)."""
    issues: list[ConfigIssue] = []
    in_cycle: set[int] = set()
    reported: set[tuple[str | None, str]] = set()
    for start in edges:
        if start in reported:
            continue
        path = [start]
        current = start
        while current in edges:
            kind = current[0]
            nxt = (kind, edges[current][0])
            if nxt == start:
                names = " → ".join([p[1] for p in path] + [start[1]])
                first = min(edges[p][1] for p in path)
                issues.append(ConfigIssue(f"moved[{first}]", f"the moved blocks make a cycle: {names}"))
                reported.update(path)
                in_cycle.update(edges[p][1] for p in path)
                break
            if nxt in path:
                break
            path.append(nxt)
            current = nxt
    return issues, in_cycle
