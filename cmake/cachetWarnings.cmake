# Warnings-as-errors for cachet's own targets (tests, benchmarks, examples);
# users of the INTERFACE target get no flags from us. The headers must stay clean
# under these: consumers that add_subdirectory cachet see its warnings as theirs.
function(cachet_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wpedantic -Werror)
endfunction()
