vcl 4.1;

# edgectl's purge interface with tags purged through vmod_xkey (varnish-modules): include this file
# instead of edgectl.vcl, which it includes itself; keep both files in one directory.
#
#       include "edgectl-xkey.vcl";
#
# `import xkey` fails to compile where varnish-modules is not installed, which is why this part is
# a file of its own.
#
# Objects are tagged by the `xkey` response header of the origin (words separated by spaces or
# commas). A tag purge that carries X-Edgectl-Keys is answered here; one that carries only
# X-Edgectl-Match falls through to edgectl.vcl's header-based ban.
#
#   BAN  X-Edgectl-Ban: tags   X-Edgectl-Keys: tag-1 tag-2   [X-Edgectl-Soft: 1]
#        xkey.purge() removes every object holding any of the keys; with X-Edgectl-Soft,
#        xkey.softpurge() expires them instead, so each is served stale (in grace) once while it is
#        fetched again. The answer says how many objects in X-Edgectl-Count.

import xkey;

sub vcl_recv {
    if (req.method == "BAN" && client.ip ~ edgectl_purgers) {
        if (req.http.X-Edgectl-Ban == "probe") {
            set req.http.X-Edgectl-Vmods = "xkey";
        } elsif (req.http.X-Edgectl-Ban == "tags" && req.http.X-Edgectl-Keys) {
            # xkey keys are literal words; a double quote or a control character is never one
            if (req.http.X-Edgectl-Keys !~ {"^[^"\x00-\x1f\x7f]+$"}) {
                return (synth(400, "edgectl: X-Edgectl-Keys holds a double quote or a control character"));
            }
            if (req.http.X-Edgectl-Soft == "1") {
                set req.http.X-Edgectl-Count = xkey.softpurge(req.http.X-Edgectl-Keys);
                set req.http.X-Edgectl-Method = "xkey-soft";
            } else {
                set req.http.X-Edgectl-Count = xkey.purge(req.http.X-Edgectl-Keys);
                set req.http.X-Edgectl-Method = "xkey";
            }
            return (synth(200, "edgectl: invalidated " + req.http.X-Edgectl-Count + " objects"));
        }
    }
}

include "./edgectl.vcl";
