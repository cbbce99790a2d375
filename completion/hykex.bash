# bash completion for hykex(1), hykexd(8) and hykex-qkdsim(1)
# Installed as share/bash-completion/completions/hykex (hykexd and hykex-qkdsim are linked to it).

_hykex()
{
    local cur prev cmd
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        mapfile -t COMPREPLY < <(compgen -W 'version uuid run open get close status kdf combine
            kem sig help' -- "$cur")
        return
    fi
    cmd=${COMP_WORDS[1]}
    case $prev in
        -c | --config)
            mapfile -t COMPREPLY < <(compgen -f -X '!*.json' -- "$cur")
            compopt -o plusdirs 2>/dev/null
            return
            ;;
        --unix)
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        --address | --keys | --index | --chunk | --timeout | --ksid)
            return
            ;;
    esac
    local opts='-c --address --unix'
    case $cmd in
        run) opts+=' --keys' ;;
        open) opts+=' --chunk --timeout --ksid' ;;
        get) opts+=' --index' ;;
        status) opts+=' --json' ;;
        kem) opts='ML-KEM-512 ML-KEM-768 ML-KEM-1024 X25519 Classic-McEliece-348864 Classic-McEliece-348864f Classic-McEliece-460896 Classic-McEliece-460896f Classic-McEliece-6688128 Classic-McEliece-6688128f Classic-McEliece-6960119 Classic-McEliece-6960119f Classic-McEliece-8192128 Classic-McEliece-8192128f sntrup653 sntrup761 sntrup857 sntrup953 sntrup1013 sntrup1277 selftest' ;;
        sig) opts='ML-DSA-44 ML-DSA-65 ML-DSA-87 selftest' ;;
        version | uuid | help) opts='' ;;
    esac
    if [[ $cur == -* ]] || [ "$cmd" = kem ] || [ "$cmd" = sig ]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    elif [ "$cmd" = run ]; then
        mapfile -t COMPREPLY < <(compgen -f -X '!*.json' -- "$cur")
        compopt -o plusdirs 2>/dev/null
    fi
}

_hykexd()
{
    local cur prev
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    case $prev in
        -c | --config | -p | --peers)
            mapfile -t COMPREPLY < <(compgen -f -X '!*.json' -- "$cur")
            compopt -o plusdirs 2>/dev/null
            return
            ;;
        --ctl | --log-level)
            [ "$prev" = --log-level ] &&
                mapfile -t COMPREPLY < <(compgen -W 'debug info warning error' -- "$cur")
            return
            ;;
    esac
    if [ "${COMP_WORDS[0]##*/}" = hykex-qkdsim ]; then
        mapfile -t COMPREPLY < <(compgen -W '-c --config --ctl --log-level --check-config --help' -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -W '-c --config -p --peers --check-config --help' -- "$cur")
    fi
}

complete -F _hykex hykex
complete -F _hykexd hykexd hykex-qkdsim
