# Warnings-as-errors for cachet's own targets (tests, benchmarks, examples);
# users of the INTERFACE target get no flags from us.
function(cachet_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror
    # g++ 12 flags designated initializers that leave members at their defaults,
    # which is how options structs are meant to be written.
    -Wno-missing-field-initializers)
endfunction()
