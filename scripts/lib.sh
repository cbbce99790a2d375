# Shared shell helpers; source it: . "$(dirname "$0")/../scripts/lib.sh"

# Prints the openssl CLI to use: the system one if it is >= 3.5, else the newest that
# scripts/bootstrap.sh built under ${HYKEX_DEPS:-$HOME/.cache/hykex}.
hx_openssl() {
    local v d best=""
    if command -v openssl >/dev/null 2>&1; then
        v=$(openssl version | awk '{print $2}')
        if [ "$(printf '%s\n3.5\n' "$v" | sort -V | head -n1)" = "3.5" ]; then
            command -v openssl
            return 0
        fi
    fi
    for d in "${HYKEX_DEPS:-$HOME/.cache/hykex}"/openssl-*/.hykex-complete; do
        if [ -f "$d" ]; then best=$(printf '%s\n%s\n' "$best" "${d%/.hykex-complete}" | sort -V | tail -n1); fi
    done
    if [ -z "$best" ]; then
        echo "no OpenSSL >= 3.5 found: run scripts/bootstrap.sh" >&2
        return 1
    fi
    printf '%s/bin/openssl\n' "$best"
}

# The Debian mirror URI from this machine's own apt sources (deb822 or one-line format).
debian_mirror() {
    local uri
    uri=$( { grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
                 | sed -E 's/^\s*URIs:\s*//' | tr ' ' '\n'
             grep -hE '^\s*deb(-src)?\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                 2>/dev/null | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
           } | grep -E '^https?://' | grep -vE 'security|updates|backports' \
             | grep -E '/debian/?$' | head -n1 || true)
    [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"
    printf '%s\n' "${uri%/}"
}
