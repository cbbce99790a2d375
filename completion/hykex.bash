# bash completion for hykex(1), hykexd(8) and hykex-qkdsim(1)
# Installed as share/bash-completion/completions/hykex (hykexd and hykex-qkdsim are linked to it).
#
# Subcommands and options come from the programs' own --help (one parser, common/cmdline.c,
# prints every option there), so a new option or subcommand completes without a change here;
# an option's value is completed as a file when --help names it FILE, PEM, PATH or SOCKET.

# _hykex_options HELP_TEXT: every option the help text lists, one per line.
_hykex_options()
{
    grep -E '^ +-' <<<"$1" | grep -oE -- '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | tr -d ' ,' |
        awk '!seen[$0]++'
}

# _hykex_value HELP_TEXT OPTION: 0 when OPTION takes a value (its placeholder on stdout): the
# option column of its line ("  -n, --keys N     ...") ends with an upper-case word.
_hykex_value()
{
    local col
    col=$(grep -E '^ +-' <<<"$1" | grep -E -- "(^|[ ,])$2( |,|$)" | head -n 1 | sed -E 's/^ +//; s/  .*//')
    col=${col##* }
    [[ $col =~ ^[A-Z] ]] && echo "$col"
}

# _hykex_complete HELP_TEXT: COMPREPLY for the current word when it is an option or the value
# of one; returns 1 when it is neither (an operand).
_hykex_complete()
{
    local help=$1 ph
    if [[ $prev == -* ]] && ph=$(_hykex_value "$help" "$prev"); then
        case $ph in
            FILE | CONFIG.json | NETWORK.json | REQUEST.json)
                mapfile -t COMPREPLY < <(compgen -f -X '!*.json' -- "$cur")
                compopt -o plusdirs -o filenames 2>/dev/null
                ;;
            PEM | PATH | SOCKET)
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                compopt -o filenames 2>/dev/null
                ;;
            L) mapfile -t COMPREPLY < <(compgen -W 'error warn info debug' -- "$cur") ;;
        esac
        return 0
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_hykex_options "$help")" -- "$cur")
        return 0
    fi
    return 1
}

# _hykex_operand_index FIRST HELP_TEXT: how many operands come before the current word, counting
# from COMP_WORDS[FIRST] and skipping options and their values.
_hykex_operand_index()
{
    local i n=0 w
    for ((i = $1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ $w == -* ]]; then
            [[ $w == *=* ]] || ! _hykex_value "$2" "$w" >/dev/null || i=$((i + 1))
        else
            n=$((n + 1))
        fi
    done
    echo "$n"
}

_hykex()
{
    local cur prev prog cmd help i words=()
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    prog=${COMP_WORDS[0]}
    # The subcommand: the first word after the program that is not an option.
    for ((i = 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == -* ]] || { cmd=${COMP_WORDS[i]}; break; }
    done
    if [ -z "$cmd" ]; then
        help=$("$prog" --help 2>/dev/null)
        _hykex_complete "$help" && return
        mapfile -t COMPREPLY < <(compgen -W "$(sed -n '/^commands:/,/^$/s/^  \([a-z0-9-]*\) .*/\1/p' <<<"$help")" -- "$cur")
        return
    fi
    help=$("$prog" "$cmd" --help 2>/dev/null)
    _hykex_complete "$help" && return
    local n
    n=$(_hykex_operand_index $((i + 1)) "$help")
    case $cmd:$n in
        run:0)
            mapfile -t COMPREPLY < <(compgen -f -X '!*.json' -- "$cur")
            compopt -o plusdirs -o filenames 2>/dev/null
            ;;
        kdf:0) words=$(sed -n '1s/.*<\([^>]*\)>.*/\1/p' <<<"$help" | tr '|' ' ') ;;
        combine:0) words=$(sed -n 's/^methods: //p' <<<"$help") ;;
        kem:0 | sig:0) words=$(sed -n 's/^ALGORITHM: //p' <<<"$help" | tr -d ',') ;;
        kem:1 | sig:1) words=selftest ;;
        help:0) words=$("$prog" --help 2>/dev/null | sed -n '/^commands:/,/^$/s/^  \([a-z0-9-]*\) .*/\1/p') ;;
    esac
    if [ -n "$words" ]; then
        mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    fi
}

_hykexd()
{
    local cur prev prog help i n
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    prog=${COMP_WORDS[0]}
    if [ "${prog##*/}" = hykex-qkdsim ]; then
        # hykex-qkdsim [OPTIONS] | hykex-qkdsim ctl SOCKET VERB [ARG]
        for ((i = 1; i < COMP_CWORD; i++)); do
            if [ "${COMP_WORDS[i]}" = ctl ]; then
                help=$("$prog" ctl --help 2>/dev/null)
                _hykex_complete "$help" && return
                n=$(_hykex_operand_index $((i + 1)) "$help")
                if [ "$n" = 0 ]; then
                    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                    compopt -o filenames 2>/dev/null
                elif [ "$n" = 1 ]; then
                    mapfile -t COMPREPLY < <(compgen -W "$(grep -oE '(^| )[a-z|]+ (LINK|KME)?$|pools$' <<<"$help" |
                        tr '|' ' ' | sed 's/LINK\|KME//g')" -- "$cur")
                fi
                return
            fi
        done
    fi
    help=$("$prog" --help 2>/dev/null)
    _hykex_complete "$help" && return
    if [ "${prog##*/}" = hykex-qkdsim ]; then
        mapfile -t COMPREPLY < <(compgen -W ctl -- "$cur")
    fi
}

complete -F _hykex hykex
complete -F _hykexd hykexd hykex-qkdsim
