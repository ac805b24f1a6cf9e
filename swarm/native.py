"""The compiled core: the per-message path built with mypyc, used only while it matches.

``swarm build-native`` (:mod:`swarm.native_build`) compiles the modules named in
:data:`COMPILED` with mypyc into ``swarm/_native/``, beside a stamp that holds the SHA-256 of
the package's sources as they were compiled. :func:`install` (run when ``swarm`` is imported)
puts a finder first on ``sys.meta_path`` that loads those modules from their extension files,
but only while the package's sources still hash to the stamp: mypyc reads the types and
constants of the whole package, so an edit anywhere in it turns the compiled core off until
the next build, and a stale build never shadows the code. Nothing built, a stale build, a
build for another Python, or ``SWARM_NATIVE=0`` in the environment: every module is the pure
Python one, which does the same (the compiled one is the same source, about a ninth cheaper
in CPU at N = 200; bench/README).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from types import ModuleType

#: The modules that are compiled: the per-message path (the peer connection's callbacks, its
#: protocol state, the codecs, the request policy and picker, the choker, the have batcher,
#: the rate limit), typed, so that mypyc makes native code of them. Their tests pass compiled
#: and pure alike (a compiled function checks the classes it is given: the tests hand the
#: shells' fakes only to parameters typed by a Protocol).
COMPILED = (
    "swarm.choker",
    "swarm.extensions",
    "swarm.have_batch",
    "swarm.peer",
    "swarm.peer_state",
    "swarm.peer_types",
    "swarm.picker",
    "swarm.pipeline",
    "swarm.ratelimit",
    "swarm.requests",
    "swarm.wire.bitfield",
    "swarm.wire.fast",
    "swarm.wire.handshake",
    "swarm.wire.messages",
    "swarm.wire.parser",
    "swarm.wire.pex",
)
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
NATIVE_DIR = os.path.join(PACKAGE_DIR, "_native")
STAMP = "stamp.txt"
#: What :func:`install` found, for ``swarm build-native --status`` and compare's ``--json``.
state = "pure Python (no compiled core built: `swarm build-native`)"


def source_digest(package_dir: str) -> str:
    """The SHA-256 of every ``.py`` file under *package_dir*, with its path (the build's own
    folder and caches left out)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d not in ("_native", "__pycache__"))
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, package_dir).replace(os.sep, "/")
                with open(path, "rb") as fh:
                    data = fh.read()
                digest.update(b"%s\0%d\0" % (rel.encode(), len(data)))
                digest.update(data)
    return digest.hexdigest()


def extension_suffix() -> str:
    """The file ending of this Python's extension modules (``.cpython-311-x86_64-...so``)."""
    return importlib.machinery.EXTENSION_SUFFIXES[0]


class NativeFinder:
    """Finds the compiled modules' extension files; loads mypyc's shared library first."""

    def __init__(self, files: dict[str, str], shared: tuple[str, str]) -> None:
        self.files = files
        self.shared = shared
        self.failed = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None or self.failed or not self._shared_loaded():
            return None
        return importlib.util.spec_from_file_location(fullname, file)

    def _shared_loaded(self) -> bool:
        """Load the library every compiled module is a face of (a top-level module to mypyc);
        if it cannot load (a broken build), every module stays pure Python."""
        global state
        name, file = self.shared
        if name in sys.modules:
            return True
        spec = importlib.util.spec_from_file_location(name, file)
        try:
            if spec is None or spec.loader is None:
                raise ImportError(f"no loader for {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except (ImportError, OSError) as exc:
            sys.modules.pop(name, None)
            self.failed = True
            state = f"pure Python (the compiled core does not load: {exc})"
            return False
        return True


@dataclass(frozen=True)
class Stamp:
    """What a build holds: the sources' digest, the Python it is for (the extension files'
    ending), mypyc's shared library and each module's file, relative to the build's folder."""

    digest: str
    suffix: str
    shared: str
    modules: dict[str, str]

    def format(self) -> str:
        head = [f"digest {self.digest}", f"suffix {self.suffix}", f"shared {self.shared}"]
        return "\n".join(head + [f"module {k} {v}" for k, v in self.modules.items()]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Stamp:
        """ValueError if *text* is not a stamp (lines of words, not json: ``import swarm``
        stays light for ``swarm create --help``)."""
        fields: dict[str, str] = {}
        modules: dict[str, str] = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "module":
                name, _, file = value.partition(" ")
                modules[name] = file
            else:
                fields[key] = value
        try:
            stamp = cls(fields["digest"], fields["suffix"], fields["shared"], modules)
        except KeyError as exc:
            raise ValueError(f"no {exc} in the stamp") from None
        if not modules or not all(modules.values()):
            raise ValueError("no modules in the stamp")
        return stamp


def read_stamp(native_dir: str = NATIVE_DIR) -> Stamp | None:
    """The build's stamp, None if there is none (ValueError if it is not one)."""
    try:
        with open(os.path.join(native_dir, STAMP), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    return Stamp.parse(text)


def finder_for(stamp: Stamp, native_dir: str) -> NativeFinder:
    """A finder for the files a stamp names."""
    files = {name: os.path.join(native_dir, file) for name, file in stamp.modules.items()}
    shared = (stamp.shared.split(".", 1)[0], os.path.join(native_dir, stamp.shared))
    return NativeFinder(files, shared)


def verdict(native_dir: str, package_dir: str) -> tuple[str, NativeFinder | None]:
    """What a build in *native_dir* is worth for the sources in *package_dir*: a line that
    says so, and the finder to use (None: pure Python)."""
    if os.environ.get("SWARM_NATIVE") == "0":
        return "pure Python (SWARM_NATIVE=0)", None
    try:
        stamp = read_stamp(native_dir)
    except ValueError:
        return "pure Python (the compiled core's stamp is malformed: `swarm build-native`)", None
    if stamp is None:
        return "pure Python (no compiled core built: `swarm build-native`)", None
    if stamp.suffix != extension_suffix():
        return "pure Python (the compiled core is for another Python: `swarm build-native`)", None
    if stamp.digest != source_digest(package_dir):
        return "pure Python (the sources changed since `swarm build-native`)", None
    return f"compiled ({len(stamp.modules)} modules, mypyc)", finder_for(stamp, native_dir)


def install(native_dir: str = NATIVE_DIR, package_dir: str = PACKAGE_DIR) -> str:
    """Use the compiled core if it was built from these very sources; return what was found."""
    global state
    if not any(isinstance(f, NativeFinder) for f in sys.meta_path):
        state, finder = verdict(native_dir, package_dir)
        if finder is not None:
            sys.meta_path.insert(0, finder)
    return state


def loaded_state() -> str:
    """:data:`state` once the compiled modules were imported: a build that does not load says
    so only then."""
    for name in COMPILED:
        importlib.import_module(name)
    return state


def in_use() -> list[str]:
    """The compiled modules that were loaded from their extension files."""
    return sorted(
        name
        for name in COMPILED
        if (m := sys.modules.get(name)) is not None
        and str(getattr(m, "__file__", "")).endswith(extension_suffix())
    )
