"""The Varnish daemon on this machine and the VCL shipped with the plugin: finding, reading and compiling them.

Varnish Cache 9 became Vinyl Cache and its daemon `vinyld`; packages of it may install `varnishd`
too. Either is found, on PATH first and then in the sbin directories packages put it in (which a
non-root PATH often leaves out). `-C` compiles a VCL to C and exits, changing nothing: that is the
check. It writes the C code (or the compiler's complaint) to stderr, exits 0 or non-zero, and needs
a work directory (`-n`), which is a fresh temporary one here so that no running cache is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("varnishd", "vinyld")
SBIN = ("/usr/sbin", "/usr/local/sbin", "/opt/varnish/sbin")
CORE_VCL = "edgectl.vcl"
XKEY_VCL = "edgectl-xkey.vcl"
# where each flavour looks for a relative `include` by default (its vcl_path); the checked file's own
# directory goes first
DEFAULT_VCL_PATH = ("/etc/varnish", "/usr/share/varnish/vcl", "/etc/vinyl-cache", "/usr/share/vinyl-cache/vcl")
COMPILE_TIMEOUT = 120.0  # seconds: -C runs the C compiler, slow on a loaded machine


def find_daemon() -> str | None:
    """The path of `varnishd` or `vinyld`, or None when neither is installed."""
    for name in DAEMONS:
        found = shutil.which(name)
        if found:
            return found
    for directory in SBIN:
        for name in DAEMONS:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


class DaemonMissing(RuntimeError):
    """Neither varnishd nor vinyld is installed."""

    def __init__(self):
        super().__init__("neither varnishd nor vinyld is installed (looked on PATH and in " + ", ".join(SBIN) + ")")


def require_daemon() -> str:
    found = find_daemon()
    if found is None:
        raise DaemonMissing()
    return found


def daemon_version(daemon: str) -> str:
    """`varnish-7.1.1` and the like, from `-V` (which it prints to stderr), or '' when unreadable."""
    try:
        done = subprocess.run([daemon, "-V"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"\(([a-z-]+-\d[\w.]*)", done.stderr + done.stdout)
    return match.group(1) if match else ""


# -- the shipped VCL -------------------------------------------------------------------
def vcl_file(name: str = CORE_VCL) -> Path:
    from importlib.resources import files

    return Path(str(files("edgectl_varnish.vcl") / name))


# What the two shipped files say of each other, and what is true of the one file `vcl_text(xkey=True)` makes
# of them instead: (file, passage, its replacement).
_ONE_FILE = (
    (XKEY_VCL,
     "# edgectl's purge interface with tags purged through vmod_xkey (varnish-modules): include this file\n"
     "# instead of edgectl.vcl, which it includes itself; keep both files in one directory.\n"
     "#\n"
     '#       include "edgectl-xkey.vcl";\n',
     "# edgectl's purge interface with tags purged through vmod_xkey (varnish-modules), in one file: this\n"
     "# part first, then edgectl.vcl, whose comments say how to install it. Save the whole as edgectl.vcl\n"
     "# beside your own VCL and include it; nothing else goes with it.\n"
     "#\n"
     '#       include "edgectl.vcl";\n'),
    (XKEY_VCL,
     "which is why this part is\n# a file of its own.",
     "which is why\n# `edgectl varnish vcl` prints this part only with --xkey."),
    (XKEY_VCL, "falls through to edgectl.vcl's header-based ban.", "falls through to the header-based ban below."),
    (CORE_VCL,
     "#   With varnish-modules installed, include edgectl-xkey.vcl instead (it includes this file itself)\n"
     "#   to purge tags through xkey.\n",
     "#   Tags are purged through xkey (varnish-modules) by the part at the top of this file.\n"),
)


def vcl_text(xkey: bool = False) -> str:
    """The VCL to install, as one file: edgectl.vcl, or edgectl-xkey.vcl with edgectl.vcl in place of its include,
    their comments saying what is true of that one file."""
    core = vcl_file(CORE_VCL).read_text()
    if not xkey:
        return core
    include = f'include "./{CORE_VCL}";'
    xkey_part = vcl_file(XKEY_VCL).read_text()
    assert include in xkey_part, f"{XKEY_VCL} no longer includes {CORE_VCL}"
    texts = {XKEY_VCL: xkey_part, CORE_VCL: core}
    for name, passage, replacement in _ONE_FILE:
        assert passage in texts[name], f"{name} no longer says {passage!r}"
        texts[name] = texts[name].replace(passage, replacement)
    # an included file may repeat `vcl 4.1;`, one file may not
    inlined = re.sub(r"^vcl \d+\.\d+;\n", "", texts[CORE_VCL], count=1, flags=re.M)
    return texts[XKEY_VCL].replace(include, f"# ---- {CORE_VCL}, inlined ----\n" + inlined)


# -- compiling -------------------------------------------------------------------------
@dataclass(frozen=True)
class Compiled:
    ok: bool
    message: str  # the compiler's complaint in one line, or '' when it compiled
    daemon: str


def compile_vcl(path: Path, daemon: str | None = None) -> Compiled:
    """Compile the VCL file at `path` with `-C`, in a scratch work directory."""
    daemon = daemon or require_daemon()
    path = Path(path).resolve()
    vcl_path = ":".join((str(path.parent),) + DEFAULT_VCL_PATH)
    with tempfile.TemporaryDirectory(prefix="edgectl-vcc-") as work:
        # -j none: the default jail (as root) compiles as another user, who cannot read a private file or dir
        args = [daemon, "-C", "-j", "none", "-n", os.path.join(work, "n"), "-p", f"vcl_path={vcl_path}",
                "-f", str(path)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=COMPILE_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return Compiled(False, f"{Path(daemon).name} -C did not finish within {COMPILE_TIMEOUT:g}s", daemon)
        except OSError as exc:
            return Compiled(False, f"{daemon} cannot be run: {exc}", daemon)
    if done.returncode == 0:
        return Compiled(True, "", daemon)
    return Compiled(False, compiler_complaint(done.stderr + done.stdout), daemon)


def compiler_complaint(output: str) -> str:
    """The VCC compiler's message in one line: what is wrong and where, without the source excerpt."""
    lines = [line.strip() for line in output.splitlines()]
    if "Message from VCC-compiler:" in lines:
        lines = lines[lines.index("Message from VCC-compiler:") + 1:]
    kept: list[str] = []
    for line in lines:
        if not line or line.startswith(("Running VCC-compiler failed", "VCL compilation failed", "Could not delete")):
            continue
        kept.append(line)
        if re.match(r"^\('.*' Line \d+ Pos \d+\)", line):  # the place; the excerpt under it adds nothing
            break
    return " ".join(kept)[:500] or "the VCL compiler failed without saying why"


def compile_wrapped(name: str, daemon: str | None = None) -> Compiled:
    """Compile a shipped VCL file the way an operator includes it: from a main file with a backend."""
    with tempfile.TemporaryDirectory(prefix="edgectl-vcl-") as work:
        main = Path(work) / "main.vcl"
        main.write_text(f'vcl 4.1;\nbackend default none;\ninclude "{vcl_file(name)}";\n')
        return compile_vcl(main, daemon)


def xkey_available(daemon: str | None = None) -> bool:
    """Whether vmod_xkey (varnish-modules) can be imported by this daemon: a VCL that imports it compiles."""
    with tempfile.TemporaryDirectory(prefix="edgectl-vcl-") as work:
        main = Path(work) / "main.vcl"
        main.write_text("vcl 4.1;\nimport xkey;\nbackend default none;\n")
        return compile_vcl(main, daemon).ok
