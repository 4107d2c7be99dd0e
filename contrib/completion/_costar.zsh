#compdef stmfadm sbdadm itadm
# zsh completion for stmfadm, sbdadm and itadm (costar): the commands list their own subcommands
# and flags (urfave/cli's --generate-bash-completion), so this never goes stale.
local cur=${words[CURRENT]}
local -a req opts
req=(${words[1,CURRENT-1]})
[[ $cur == -* ]] && req+=($cur)
opts=("${(@f)$(${req[@]} --generate-bash-completion 2>/dev/null)}")
if [[ -n ${opts[1]} ]]; then
  compadd -- ${opts[@]}
else
  _files
fi
