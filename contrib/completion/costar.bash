# bash completion for stmfadm, sbdadm and itadm (costar). The commands list their own subcommands
# and flags (urfave/cli's --generate-bash-completion), so this never goes stale. make install
# puts it in share/bash-completion/completions under each command's name.
_costar_cli() {
  local cur words cword
  if declare -F _init_completion >/dev/null 2>&1; then
    _init_completion -n =: || return
  else
    cur=${COMP_WORDS[COMP_CWORD]} words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
  fi
  local -a req=("${words[@]:0:cword}")
  [[ $cur == -* ]] && req+=("$cur")
  local IFS=$'\n'
  # Suggestions first; file names when the command offers none (LU paths).
  COMPREPLY=($(compgen -W "$("${req[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
  [ ${#COMPREPLY[@]} -gt 0 ] || COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _costar_cli stmfadm sbdadm itadm
