"""`edgectl varnish`: print the VCL edgectl purges through, and compile a VCL with varnishd/vinyld -C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="varnish",
    help="Self-run Varnish caches: the VCL edgectl purges through, and checking a VCL with varnishd -C.",
    no_args_is_help=True,
)


@app.command("vcl")
def varnish_vcl(
    xkey: Annotated[bool, typer.Option("--xkey", help="The variant that purges tags through vmod_xkey "
                                                      "(needs varnish-modules), as one file.")] = False,
) -> None:
    """Print the VCL to install on each cache: include it from your own VCL (its comments say how)."""
    from edgectl_varnish.daemon import vcl_text

    typer.echo(vcl_text(xkey=xkey), nl=False)


@app.command("check")
def varnish_check(
    file: Annotated[Optional[Path], typer.Argument(help="The VCL to compile; default: the VCL this plugin ships.",
                                                   show_default=False)] = None,
) -> None:
    """Compile a VCL with varnishd -C (vinyld -C on Vinyl Cache 9), changing nothing; one line per file."""
    from edgectl.errors import OperationFailed, UsageError
    from edgectl_varnish import daemon

    try:
        binary = daemon.require_daemon()
    except daemon.DaemonMissing as exc:
        raise OperationFailed(str(exc), hint="install Varnish (apt-get install varnish varnish-modules) "
                                             "or Vinyl Cache, then run this again") from None
    flavour = f"{Path(binary).name} ({daemon.daemon_version(binary) or 'version unknown'})"
    if file is not None:
        if not file.is_file():
            raise UsageError(f"{file}: no such VCL file")
        result = daemon.compile_vcl(file, binary)
        if not result.ok:
            raise OperationFailed(f"{file} does not compile: {result.message}",
                                  hint=f"{binary} -C -f {file} shows the whole compiler output")
        typer.echo(f"ok: {file} compiles with {flavour}")
        return
    checked = [daemon.CORE_VCL]
    if daemon.xkey_available(binary):
        checked.append(daemon.XKEY_VCL)
    for name in checked:
        result = daemon.compile_wrapped(name, binary)
        if not result.ok:
            raise OperationFailed(f"the shipped {name} does not compile with {flavour}: {result.message}",
                                  hint="report it with the output of edgectl plugins show varnish")
        typer.echo(f"ok: {daemon.vcl_file(name)} compiles with {flavour}")
    if daemon.XKEY_VCL not in checked:
        typer.echo(f"skipped: {daemon.XKEY_VCL}: vmod_xkey is not installed (varnish-modules); tags are banned instead")
