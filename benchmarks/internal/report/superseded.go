package report

// Superseded finds the scenarios of files that a later run replaces: when
// two files hold a run of the same scenario (the same title: name, sizes
// and store), the one measured later (Meta.Date) counts and the earlier
// is superseded; runs of equal date all count. It maps each superseded
// scenario to the file of the latest run of it. This lets a results set be
// refreshed one scenario at a time (a new http run next to a whole suite's
// file) without the older run deciding a target.
func Superseded(files []*File) map[*Scenario]*File {
	newest := map[string]*File{}
	for _, f := range files {
		for i := range f.Scenarios {
			key := f.Scenarios[i].Title()
			if cur, ok := newest[key]; !ok || f.Meta.Date.After(cur.Meta.Date) {
				newest[key] = f
			}
		}
	}
	out := map[*Scenario]*File{}
	for _, f := range files {
		for i := range f.Scenarios {
			s := &f.Scenarios[i]
			if n := newest[s.Title()]; n.Meta.Date.After(f.Meta.Date) {
				out[s] = n
			}
		}
	}
	return out
}
