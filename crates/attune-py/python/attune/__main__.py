from attune.dist import exit_without_finalizing, main

exit_without_finalizing(main())
