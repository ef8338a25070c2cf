package cloudflare

import (
	"fmt"
	"reflect"
)

// set fills one of the SDK's request fields (param.Field[T]). That type lives
// in a package internal to the SDK, so it cannot be named here, and the SDK's
// own helper (cloudflare.F) sits in its root package, which links every
// Cloudflare service into the binary. A mismatched value panics; every call
// site is exercised by the tests.
func set(field any, value any) {
	f := reflect.ValueOf(field).Elem()
	v := f.FieldByName("Value")
	if !v.IsValid() {
		panic(fmt.Sprintf("cloudflare: %T is not an SDK param field", field))
	}
	v.Set(reflect.ValueOf(value))
	f.FieldByName("Present").SetBool(true)
}
