package stmf

// LUUnwrapper is implemented by an adapter that wraps an LU provider's
// logical unit before registering it (stmfd wraps *lu.Device for its
// management plane). Session.LU hands out the wrapped LU, so a provider
// can recognise its own LUs, as EXTENDED COPY must when it resolves a
// copy target that is another LU.
type LUUnwrapper interface {
	UnwrapLU() LogicalUnit
}

// unwrapLU returns the LU an adapter wraps, or lu itself.
func unwrapLU(lu LogicalUnit) LogicalUnit {
	for range 8 { // adapters do not nest deeper; bound it anyway
		u, ok := lu.(LUUnwrapper)
		if !ok {
			return lu
		}
		inner := u.UnwrapLU()
		if inner == nil {
			return lu
		}
		lu = inner
	}
	return lu
}
