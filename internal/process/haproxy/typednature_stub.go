package haproxy

// typedNature is the nature a typed snapshot (`show stat typed`, `show info typed`) gave the
// field. This stub knows none; another branch of issue 13 provides the real one, and the stub
// is deleted when it is merged.
func (p *Processor) typedNature(obj byte, field string) Nature { return NatureUnknown }
