vcl 4.1;

# edgectl's purge interface for Varnish Cache (varnishd; Vinyl Cache 9 calls it vinyld). Tested with 7.1.
#
# Installing it
#   Copy this file next to your own VCL (for instance into /etc/varnish/) and include it near the top
#   of your main file, after your backends and before your own subroutines:
#
#       vcl 4.1;
#       backend default { .host = "127.0.0.1"; .port = "8080"; }
#       include "edgectl.vcl";
#       sub vcl_recv { ...your own logic... }
#
#   VCL runs the bodies of a built-in subroutine defined more than once in the order they appear, so
#   the parts below run before yours; they return only for edgectl's own PURGE and BAN requests and
#   leave every other request to you. Check the result before loading it:
#
#       edgectl varnish check /etc/varnish/default.vcl     (one line; exit 1 when it does not compile)
#       varnishd -C -f /etc/varnish/default.vcl           (vinyld -C on Vinyl Cache 9: the C code, or why not)
#
#   With varnish-modules installed, include edgectl-xkey.vcl instead (it includes this file itself)
#   to purge tags through xkey.
#
# Who may purge
#   Only clients in the acl below may send PURGE and BAN; anyone else gets 403. Put the addresses
#   edgectl runs from in it (and keep the loopback entries for a local health check).
#
# What edgectl sends (every value is checked again here before it is spliced into a ban)
#   PURGE /path?query  Host: www.example.com     one URL, with all its variants (return(purge))
#   BAN  X-Edgectl-Ban: prefix    X-Edgectl-Match: a regex-escaped path   [X-Edgectl-Host: a host]
#   BAN  X-Edgectl-Ban: host      X-Edgectl-Host: www.example.com
#   BAN  X-Edgectl-Ban: tags      X-Edgectl-Match: escaped tags joined by '|'   (X-Edgectl-Keys: for xkey)
#                                 with X-Edgectl-Soft: 1 (soft_purge), 501 here: only xkey can purge softly
#   BAN  X-Edgectl-Ban: everything
#   BAN  X-Edgectl-Ban: probe     answers X-Edgectl-Vcl (this file's version) and X-Edgectl-Xkey: yes|no
#
# Bans test only obj.* fields, so the ban lurker can retire them in the background instead of every
# lookup testing them: each object keeps the URL and host it was fetched for in x-url and x-host
# (removed before delivery). A tag is a word in the object's `xkey` response header, the header
# vmod_xkey reads; if your origin names tags in another header, copy it in your vcl_backend_response:
#       set beresp.http.xkey = beresp.http.Surrogate-Key;
#
# The Host header is lower-cased and loses its port here, for every request, so that a purge for
# www.example.com finds what was cached for WWW.Example.com:443.
#
# Every response says what this cache did in Cache-Status (RFC 9211), its entry after those of any
# caches behind it; edgectl cache warm counts hits and misses by it (Age alone cannot tell a miss from
# a hit within the same second):
#       Cache-Status: varnish; hit; ttl=299        from cache, with 299 s of freshness left
#       Cache-Status: varnish; hit; ttl=-3         from cache but stale, in grace (after a soft purge,
#                                                  say), while it is fetched again
#       Cache-Status: varnish; fwd=miss; stored    fetched from the backend, and cached
#       Cache-Status: varnish; fwd=bypass          not cacheable: a pass, hit-for-pass or hit-for-miss

import std;

acl edgectl_purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.http.host) {
        set req.http.host = std.tolower(regsub(req.http.host, ":[0-9]+$", ""));
    }
    if (req.method == "PURGE" || req.method == "BAN") {
        if (client.ip !~ edgectl_purgers) {
            return (synth(403, "edgectl: this client is not in acl edgectl_purgers"));
        }
        if (req.method == "PURGE") {
            return (purge);
        }
        call edgectl_ban;
    }
    # never passed on from a client: it says what this VCL was built with
    unset req.http.X-Edgectl-Vmods;
}

sub edgectl_ban {
    # a ban is split on whitespace and a double quote starts a quoted word: neither may reach one
    if (req.http.X-Edgectl-Match && req.http.X-Edgectl-Match !~ {"^[^\s"]+$"}) {
        return (synth(400, "edgectl: X-Edgectl-Match holds whitespace or a double quote"));
    }
    if (req.http.X-Edgectl-Host && req.http.X-Edgectl-Host !~ "^[a-z0-9._-]+$") {
        return (synth(400, "edgectl: X-Edgectl-Host is not a lower-case hostname"));
    }
    if (req.http.X-Edgectl-Ban == "probe") {
        return (synth(200, "edgectl VCL, probed"));
    }
    if (req.http.X-Edgectl-Ban == "prefix") {
        if (req.http.X-Edgectl-Match !~ "^/") {
            return (synth(400, "edgectl: a prefix ban needs X-Edgectl-Match starting with /"));
        }
        if (req.http.X-Edgectl-Host) {
            std.ban("obj.http.x-host == " + req.http.X-Edgectl-Host + " && obj.http.x-url ~ ^" +
                    req.http.X-Edgectl-Match);
        } else {
            std.ban("obj.http.x-url ~ ^" + req.http.X-Edgectl-Match);
        }
    } elsif (req.http.X-Edgectl-Ban == "host") {
        if (!req.http.X-Edgectl-Host) {
            return (synth(400, "edgectl: a host ban needs X-Edgectl-Host"));
        }
        std.ban("obj.http.x-host == " + req.http.X-Edgectl-Host);
    } elsif (req.http.X-Edgectl-Ban == "tags") {
        # a ban removes objects outright: asked for a soft purge, it would do what was not asked
        if (req.http.X-Edgectl-Soft) {
            return (synth(501, "edgectl: a soft purge needs xkey, and this VCL was built without it"));
        }
        if (!req.http.X-Edgectl-Match) {
            return (synth(501, "edgectl: tags need xkey here, and this VCL was built without it"));
        }
        # a tag is a whole word of the xkey header, which vmod_xkey splits on spaces and commas
        std.ban("obj.http.xkey ~ (^|[\s,])(" + req.http.X-Edgectl-Match + ")($|[\s,])");
    } elsif (req.http.X-Edgectl-Ban == "everything") {
        std.ban("obj.status != 0");
    } else {
        return (synth(400, "edgectl: unknown X-Edgectl-Ban"));
    }
    if (std.ban_error() != "") {
        return (synth(400, "edgectl: ban refused: " + std.ban_error()));
    }
    set req.http.X-Edgectl-Method = "ban";
    return (synth(200, "edgectl: banned"));
}

sub vcl_backend_response {
    set beresp.http.x-url = bereq.url;
    set beresp.http.x-host = bereq.http.host;
}

sub vcl_deliver {
    unset resp.http.x-url;
    unset resp.http.x-host;
    # RFC 9211: this cache's entry goes after those of caches behind it
    if (resp.http.Cache-Status) {
        set resp.http.Cache-Status = resp.http.Cache-Status + ", ";
    }
    if (obj.uncacheable) {
        set resp.http.Cache-Status = resp.http.Cache-Status + "varnish; fwd=bypass";
    } elsif (obj.hits > 0 && obj.ttl < 0s) {
        # served stale, in grace: the seconds are rounded down (std.integer rounds toward 0), so never ttl=0
        set resp.http.Cache-Status = resp.http.Cache-Status + "varnish; hit; ttl=" +
                                     std.integer(duration=obj.ttl - 1s, fallback=-1);
    } elsif (obj.hits > 0) {
        set resp.http.Cache-Status = resp.http.Cache-Status + "varnish; hit; ttl=" +
                                     std.integer(duration=obj.ttl, fallback=0);
    } else {
        set resp.http.Cache-Status = resp.http.Cache-Status + "varnish; fwd=miss; stored";
    }
}

sub vcl_purge {
    set req.http.X-Edgectl-Method = "purge";
    return (synth(200, "edgectl: purged"));
}

sub vcl_synth {
    # edgectl's own answers say what happened in the body too: a proxy on the way may drop the reason
    if (resp.reason ~ "^edgectl") {
        if (client.ip ~ edgectl_purgers) {
            set resp.http.X-Edgectl-Vcl = "1";
            if (req.http.X-Edgectl-Ban == "probe") {
                if (req.http.X-Edgectl-Vmods ~ "(^| )xkey( |$)") {
                    set resp.http.X-Edgectl-Xkey = "yes";
                } else {
                    set resp.http.X-Edgectl-Xkey = "no";
                }
            }
            if (req.http.X-Edgectl-Method) {
                set resp.http.X-Edgectl-Method = req.http.X-Edgectl-Method;
            }
            if (req.http.X-Edgectl-Count) {
                set resp.http.X-Edgectl-Count = req.http.X-Edgectl-Count;
            }
        }
        set resp.http.Content-Type = "text/plain; charset=utf-8";
        set resp.body = resp.reason + {"
"};
        return (deliver);
    }
}
