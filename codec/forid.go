package codec

import (
	"fmt"
	"reflect"
)

// ForID returns the built-in Codec for an identity type: String for a type
// whose underlying type is string, and the integer codec (see IntegerOf) for
// a type whose underlying type is int, int8, int16, int32, int64, uint,
// uint8, uint16, uint32 or uint64. Named types such as `type NodeID string`
// are included and encode like their underlying type.
//
// For any other type (structs, arrays, pointers, interfaces, uintptr, ...)
// it returns an error; pass a Codec explicitly for those.
//
// The predeclared types get the same codecs as String, Int64 and so on. Named
// types go through reflection on each call; StringOf and IntegerOf give the
// same encoding without it when the type is known at compile time.
func ForID[ID comparable]() (Codec[ID], error) {
	var zero ID
	var c any
	switch any(zero).(type) {
	case string:
		c = String()
	case int:
		c = Int()
	case int8:
		c = Int8()
	case int16:
		c = Int16()
	case int32:
		c = Int32()
	case int64:
		c = Int64()
	case uint:
		c = Uint()
	case uint8:
		c = Uint8()
	case uint16:
		c = Uint16()
	case uint32:
		c = Uint32()
	case uint64:
		c = Uint64()
	}
	if c != nil {
		return c.(Codec[ID]), nil
	}

	t := reflect.TypeFor[ID]()
	switch t.Kind() {
	case reflect.String:
		return reflectString[ID]{}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return reflectSigned[ID]{typ: t}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return reflectUnsigned[ID]{typ: t}, nil
	}
	return nil, fmt.Errorf("codec: no built-in codec for ID type %s (%s); pass one explicitly", t, t.Kind())
}

// reflectString is the String encoding for a named string type.
type reflectString[ID comparable] struct{}

func (reflectString[ID]) Append(dst []byte, v ID) ([]byte, error) {
	return append(dst, reflect.ValueOf(v).String()...), nil
}

func (reflectString[ID]) Decode(src []byte) (ID, error) {
	var id ID
	reflect.ValueOf(&id).Elem().SetString(string(src))
	return id, nil
}

// reflectSigned is the integer encoding for a named signed integer type.
type reflectSigned[ID comparable] struct{ typ reflect.Type }

func (c reflectSigned[ID]) Append(dst []byte, v ID) ([]byte, error) {
	return Int64().Append(dst, reflect.ValueOf(v).Int())
}

func (c reflectSigned[ID]) Decode(src []byte) (ID, error) {
	var id ID
	x, verr := decodeVarint(src)
	if verr != nil {
		return id, verr.in(c.typ.String())
	}
	rv := reflect.ValueOf(&id).Elem()
	if rv.OverflowInt(x) {
		return id, fmt.Errorf("%w: decoding %s: %d does not fit", ErrOverflow, c.typ, x)
	}
	rv.SetInt(x)
	return id, nil
}

// reflectUnsigned is the integer encoding for a named unsigned integer type.
type reflectUnsigned[ID comparable] struct{ typ reflect.Type }

func (c reflectUnsigned[ID]) Append(dst []byte, v ID) ([]byte, error) {
	return Uint64().Append(dst, reflect.ValueOf(v).Uint())
}

func (c reflectUnsigned[ID]) Decode(src []byte) (ID, error) {
	var id ID
	x, verr := decodeUvarint(src)
	if verr != nil {
		return id, verr.in(c.typ.String())
	}
	rv := reflect.ValueOf(&id).Elem()
	if rv.OverflowUint(x) {
		return id, fmt.Errorf("%w: decoding %s: %d does not fit", ErrOverflow, c.typ, x)
	}
	rv.SetUint(x)
	return id, nil
}
