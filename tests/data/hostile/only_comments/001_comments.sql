-- to do
/* later */
;;
